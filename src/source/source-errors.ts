import { BerthError } from '../core/errors.js';
import { redactCredentials } from '../core/url-credential.js';

export function refNotFound(ref: string, repo: string, reason: string): BerthError {
  return new BerthError('ERR_GIT_REF_NOT_FOUND', `ref "${ref}" not found in ${repo}: ${reason}`, {
    data: { repo, ref },
  });
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * Any failure talking to a remote as a BerthError that says what went wrong and what to do.
 * Authentication and missing repositories are ERR_GIT_SOURCE like network faults: the operator
 * retries with backoff, so fixing a token takes effect without a restart. `repo` must already
 * be free of credentials; the message of `error` (isomorphic-git's, node's) is cleaned of any.
 */
export function remoteError(error: unknown, repo: string, action: string): BerthError {
  if (error instanceof BerthError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = redactCredentials(error instanceof Error ? error.message : String(error));
  if (code === 'HttpError') {
    const status = (error as { data?: { statusCode?: number } }).data?.statusCode;
    if (status === 401 || status === 403) {
      return new BerthError(
        'ERR_GIT_SOURCE',
        `${action} ${repo}: authentication failed (HTTP ${status}); set BERTH_GIT_USERNAME and BERTH_GIT_PASSWORD or BERTH_GIT_PASSWORD_FILE (a password or access token) for this server`,
        { data: { repo, status }, cause: error },
      );
    }
    if (status === 404) {
      return new BerthError('ERR_GIT_SOURCE', `${action} ${repo}: repository not found (HTTP 404)`, {
        data: { repo, status },
        cause: error,
      });
    }
    return new BerthError('ERR_GIT_SOURCE', `${action} ${repo}: the server answered HTTP ${status ?? '?'}`, {
      data: { repo, status },
      cause: error,
    });
  }
  if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) {
    return new BerthError('ERR_GIT_SOURCE', `${action} ${repo}: cannot reach the server (${code})`, {
      data: { repo },
      cause: error,
    });
  }
  return new BerthError('ERR_GIT_SOURCE', `${action} ${repo}: ${message}`, { data: { repo }, cause: error });
}
