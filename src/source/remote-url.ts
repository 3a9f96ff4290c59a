import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { BerthError } from '../core/errors.js';

export interface GitCredentials {
  username: string;
  password: string;
}

/** What `--repo` names: a directory on this machine, or an http(s) URL of a git server. */
export type RepoLocation =
  { kind: 'local'; path: string } | { kind: 'remote'; url: string; credentials?: GitCredentials };

/** Username sent when only BERTH_GIT_PASSWORD (a token) is set; forges ignore it for tokens. */
export const DEFAULT_TOKEN_USERNAME = 'git';

/**
 * Classifies `--repo`. Credentials written into an URL (`https://user:token@host/repo.git`) are
 * taken out of it here, so that the URL that is logged, hashed into the cache path and written into
 * the cache's git config never holds them.
 */
export function parseRepoLocation(repo: string): RepoLocation {
  if (/^https?:\/\//i.test(repo)) {
    let parsed: URL;
    try {
      parsed = new URL(repo);
    } catch (error) {
      throw new BerthError('ERR_BAD_REQUEST', `--repo ${redactUrl(repo)} is not a valid URL`, {
        cause: error,
      });
    }
    const credentials =
      parsed.username !== '' || parsed.password !== ''
        ? { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) }
        : undefined;
    parsed.username = '';
    parsed.password = '';
    const url = parsed.toString();
    return credentials === undefined ? { kind: 'remote', url } : { kind: 'remote', url, credentials };
  }
  if (/^file:\/\//i.test(repo)) return { kind: 'local', path: fileURLToPath(repo) };
  if (/^(ssh|git):\/\//i.test(repo) || /^[\w.-]+@[\w.-]+:/.test(repo)) {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      `--repo ${redactUrl(repo)}: only local paths and http(s) URLs are supported (not ssh or git://); use the https URL with BERTH_GIT_USERNAME/BERTH_GIT_PASSWORD`,
      { data: { repo: redactUrl(repo) } },
    );
  }
  return { kind: 'local', path: repo };
}

/**
 * Credentials from the environment: BERTH_GIT_USERNAME and BERTH_GIT_PASSWORD (a password or an
 * access token). A token alone is enough; the username then defaults to `git`.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): GitCredentials | undefined {
  const password = env['BERTH_GIT_PASSWORD'];
  if (password === undefined || password === '') return undefined;
  const username = env['BERTH_GIT_USERNAME'];
  return {
    username: username === undefined || username === '' ? DEFAULT_TOKEN_USERNAME : username,
    password,
  };
}

export function basicAuthorization(credentials: GitCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** `https://user:secret@host/x.git` → `https://host/x.git`, for anything shown or logged. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** The cache directory name for a remote: stable per URL, safe as a file name. */
export function cacheKeyForUrl(url: string): string {
  return createHash('sha256').update(redactUrl(url)).digest('hex').slice(0, 16);
}
