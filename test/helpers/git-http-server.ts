/**
 * A real git smart-HTTP server for tests: node:http in front of `git http-backend` (the CGI
 * program that ships with git), serving every repository under `root` read-only.
 *
 *   const server = await startGitHttpServer({ root });   // root holds e.g. app.git (bare)
 *   const url = `${server.url}/app.git`;
 *   ...
 *   server.requests  // every request seen, in order: how many round trips and bytes a fetch took
 *   await server.close();
 *
 * With `auth`, every request must carry that HTTP Basic username/password (else 401), like a
 * private repository on a forge. The object is read on every request: changing its password
 * rotates the credential while the server runs.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface GitHttpRequestRecord {
  method: string;
  url: string;
  /** Filled in when the response has been sent. */
  status?: number;
  /** Bytes of response body sent to the client (a pack download shows up here). */
  responseBytes: number;
}

export interface GitHttpServer {
  /** `http://127.0.0.1:PORT`; a repository `root/app.git` is at `${url}/app.git`. */
  url: string;
  requests: GitHttpRequestRecord[];
  close(): Promise<void>;
}

let backendPath: string | undefined;
function gitHttpBackendPath(): string {
  backendPath ??= join(execFileSync('git', ['--exec-path'], { encoding: 'utf8' }).trim(), 'git-http-backend');
  return backendPath;
}

export async function startGitHttpServer(options: {
  root: string;
  auth?: { username: string; password: string };
}): Promise<GitHttpServer> {
  const requests: GitHttpRequestRecord[] = [];
  const server = createServer((req, res) => {
    const record: GitHttpRequestRecord = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      responseBytes: 0,
    };
    requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    if (options.auth && !isAuthorized(req, options.auth)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="berth-test"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    serveWithBackend(req, res, options.root, record);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function isAuthorized(req: IncomingMessage, auth: { username: string; password: string }): boolean {
  const header = req.headers.authorization ?? '';
  if (!header.startsWith('Basic ')) return false;
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8');
  return decoded === `${auth.username}:${auth.password}`;
}

function serveWithBackend(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  record: GitHttpRequestRecord,
): void {
  const requestUrl = new URL(req.url ?? '/', 'http://127.0.0.1');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    SERVER_SOFTWARE: 'berth-test',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(requestUrl.pathname),
    QUERY_STRING: requestUrl.search.replace(/^\?/, ''),
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
  };
  // Without CONTENT_LENGTH http-backend reads the body until EOF, which also covers chunked uploads.
  if (req.headers['content-length'] !== undefined) env['CONTENT_LENGTH'] = req.headers['content-length'];
  // http-backend inflates a gzip'd request body itself when told about it (git CLI clients gzip
  // large negotiation requests).
  if (req.headers['content-encoding'] !== undefined)
    env['HTTP_CONTENT_ENCODING'] = req.headers['content-encoding'];
  const gitProtocol = req.headers['git-protocol'];
  if (typeof gitProtocol === 'string') env['GIT_PROTOCOL'] = gitProtocol;

  const backend = spawn(gitHttpBackendPath(), [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  backend.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  backend.on('error', (error) => {
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(`git http-backend failed to start: ${error.message}\n`);
  });
  req.pipe(backend.stdin);
  backend.stdin.on('error', () => {
    // http-backend may exit (e.g. on a bad request) before reading the whole body.
  });

  let head = Buffer.alloc(0);
  let headersDone = false;
  backend.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) {
      record.responseBytes += chunk.length;
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const boundary = findHeaderEnd(head);
    if (boundary === undefined) return;
    headersDone = true;
    const { status, headers } = parseCgiHeaders(head.subarray(0, boundary.start).toString('latin1'));
    res.writeHead(status, headers);
    const body = head.subarray(boundary.end);
    record.responseBytes += body.length;
    if (body.length > 0) res.write(body);
  });
  backend.stdout.on('end', () => {
    if (!headersDone) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`git http-backend sent no headers: ${stderr}\n`);
      return;
    }
    res.end();
  });
}

function findHeaderEnd(buffer: Buffer): { start: number; end: number } | undefined {
  const crlf = buffer.indexOf('\r\n\r\n');
  const lf = buffer.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { start: crlf, end: crlf + 4 };
  if (lf !== -1) return { start: lf, end: lf + 2 };
  return undefined;
}

function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') {
      status = Number.parseInt(value, 10) || 500;
    } else {
      headers[name] = value;
    }
  }
  return { status, headers };
}
