import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { BerthError } from '../core/errors.js';
import {
  redactCredentials,
  rememberCredential,
  splitUrlCredential,
  type UrlCredential,
} from '../core/url-credential.js';

/** A username and a password or access token for an http(s) git server. */
export type GitCredentials = UrlCredential;

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
    if (!URL.canParse(repo))
      throw new BerthError('ERR_BAD_REQUEST', `--repo ${redactUrl(repo)} is not a valid URL`);
    const { url, credential } = splitUrlCredential(repo);
    return credential === undefined
      ? { kind: 'remote', url }
      : { kind: 'remote', url, credentials: credential };
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
 * access token), or BERTH_GIT_PASSWORD_FILE naming a file that holds it (a mounted secret; one
 * trailing newline is ignored). A token alone is enough; the username then defaults to `git`.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): GitCredentials | undefined {
  const password = passwordFromEnv(env);
  if (password === undefined || password === '') return undefined;
  const username = env['BERTH_GIT_USERNAME'];
  const credentials = {
    username: username === undefined || username === '' ? DEFAULT_TOKEN_USERNAME : username,
    password,
  };
  rememberCredential(credentials);
  return credentials;
}

function passwordFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const file = env['BERTH_GIT_PASSWORD_FILE'];
  if (file === undefined || file === '') return env['BERTH_GIT_PASSWORD'];
  if (env['BERTH_GIT_PASSWORD'] !== undefined && env['BERTH_GIT_PASSWORD'] !== '') {
    throw new BerthError('ERR_BAD_REQUEST', 'set BERTH_GIT_PASSWORD or BERTH_GIT_PASSWORD_FILE, not both');
  }
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot read BERTH_GIT_PASSWORD_FILE ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

export function basicAuthorization(credentials: GitCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** `https://user:secret@host/x.git` → `https://host/x.git`, for anything shown or logged. */
export function redactUrl(url: string): string {
  return redactCredentials(url);
}

/** The cache directory name for a remote: stable per URL, safe as a file name. */
export function cacheKeyForUrl(url: string): string {
  return createHash('sha256').update(splitUrlCredential(url).url).digest('hex').slice(0, 16);
}
