import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';

/** How long a git server may stay silent before a request fails (socket inactivity, not total). */
export const DEFAULT_GIT_HTTP_TIMEOUT_MS = 60_000;

/**
 * Largest response read from a git server (100 MiB): isomorphic-git holds a fetched pack whole in
 * memory (twice, briefly, while joining its chunks), so this bounds a fetch's memory whatever the
 * server sends. A depth-1 pack of a repository's whole tree must fit.
 */
export const DEFAULT_GIT_HTTP_MAX_RESPONSE_BYTES = 100 * 1024 * 1024;

/**
 * isomorphic-git's node HTTP client with two changes:
 *
 * - Upload-pack requests ask for a *thin pack*. berth keeps only the newest commit of a branch
 *   (depth 1). Fetching the next commit at depth 1 cuts it from its parent, and then a git server
 *   that is not allowed a thin pack cannot leave out the objects the cache already has: it sends the
 *   whole tree again (seen with git 2.39: 7 kB for a one-file change in a 50-file tree; 0.9 kB thin).
 *   isomorphic-git resolves thin-pack deltas against the objects already in the cache when it
 *   indexes the pack; it only leaves `thin-pack` out of its request because canonical git cannot
 *   read such a pack afterwards, and berth's cache is read by isomorphic-git alone.
 * - Every request has an inactivity timeout, so a hung server fails one reconcile instead of
 *   stalling the operator.
 */
export function createGitHttpClient(
  options: { timeoutMs?: number; maxResponseBytes?: number } = {},
): HttpClient {
  const timeout = options.timeoutMs ?? DEFAULT_GIT_HTTP_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_GIT_HTTP_MAX_RESPONSE_BYTES;
  return {
    async request(request: GitHttpRequest): Promise<GitHttpResponse> {
      let body = request.body;
      if (body !== undefined && request.method === 'POST' && request.url.endsWith('/git-upload-pack')) {
        const chunks: Uint8Array[] = [];
        for await (const chunk of body) chunks.push(chunk);
        // An array is sent with a Content-Length (some servers, e.g. AWS CodeCommit, hang up on a
        // chunked upload-pack request); isomorphic-git's node client accepts one, its type does not say so.
        body = [requestThinPack(Buffer.concat(chunks))] as unknown as AsyncIterableIterator<Uint8Array>;
      }
      const fetchOptions: Record<string, unknown> = {
        ...(request.fetchOptions as Record<string, unknown>),
        timeout,
      };
      const response = await nodeHttp.request(
        body === undefined ? { ...request, fetchOptions } : { ...request, body, fetchOptions },
      );
      if (response.body === undefined) return response;
      return { ...response, body: capped(response.body, maxResponseBytes, request.url) };
    },
  };
}

async function* capped(
  body: AsyncIterableIterator<Uint8Array>,
  limit: number,
  url: string,
): AsyncIterableIterator<Uint8Array> {
  let received = 0;
  for await (const chunk of body) {
    received += chunk.byteLength;
    if (received > limit) {
      throw new Error(
        `the git server sent more than ${limit} bytes in answer to ${url.replace(/\?.*$/, '')}; refused`,
      );
    }
    yield chunk;
  }
}

/**
 * Adds the `thin-pack` capability to the first `want` line of an upload-pack request (protocol
 * v0/v1, pkt-line framed). Anything else is returned unchanged: the fetch still works, it just
 * downloads more.
 */
export function requestThinPack(body: Buffer): Buffer {
  if (body.length < 4) return body;
  const length = Number.parseInt(body.subarray(0, 4).toString('latin1'), 16);
  if (!Number.isInteger(length) || length <= 4 || length > body.length) return body;
  const line = body.subarray(4, length).toString('latin1');
  if (!line.startsWith('want ') || /(^| )thin-pack( |\n|$)/.test(line)) return body;
  const newline = line.endsWith('\n') ? '\n' : '';
  const rewritten = `${line.slice(0, line.length - newline.length)} thin-pack${newline}`;
  const header = (rewritten.length + 4).toString(16).padStart(4, '0');
  return Buffer.concat([Buffer.from(header + rewritten, 'latin1'), body.subarray(length)]);
}
