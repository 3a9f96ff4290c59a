/**
 * Which git host berth talks to about a repository (commit statuses, pull-request comments): its
 * kind, API root, the repository as that API names it, and the token. The token lives in memory
 * only; nothing here ever puts it in a message.
 */
import { BerthError } from '../core/errors.js';

export type ForgeKind = 'github' | 'gitlab' | 'gitea';
export const FORGE_KINDS: readonly ForgeKind[] = ['github', 'gitlab', 'gitea'];

export interface ForgeTarget {
  kind: ForgeKind;
  /** API root without a trailing slash, e.g. https://api.github.com, https://gitlab.example/api/v4. */
  apiUrl: string;
  /** `owner/name` (GitHub, Gitea) or the project's full path `group/sub/name` (GitLab). */
  repo: string;
  token: string;
}

/**
 * The public API root of `kind` for a repository hosted at `repoUrl`'s host: github.com uses
 * api.github.com, GitHub Enterprise `https://HOST/api/v3`, GitLab `https://HOST/api/v4`, Gitea and
 * Forgejo `https://HOST/api/v1`.
 */
export function defaultApiUrl(kind: ForgeKind, repoUrl: string): string {
  const url = parseHttpUrl(repoUrl, 'the repository URL (--repo)');
  const origin = `${url.protocol}//${url.host}`;
  if (kind === 'github') return url.hostname === 'github.com' ? 'https://api.github.com' : `${origin}/api/v3`;
  return kind === 'gitlab' ? `${origin}/api/v4` : `${origin}/api/v1`;
}

/** `https://host/owner/name.git` → `owner/name` (GitLab: the whole group path). */
export function repoFromUrl(repoUrl: string): string {
  const url = parseHttpUrl(repoUrl, 'the repository URL (--repo)');
  const path = decodeURIComponent(url.pathname)
    .replace(/^\/+|\/+$/g, '')
    .replace(/\.git$/, '');
  if (!/^[^/]+(\/[^/]+)+$/.test(path)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot tell the repository from ${url.origin}${url.pathname}: give it with --git-api-repo OWNER/NAME`,
    );
  }
  return path;
}

export function checkRepoName(kind: ForgeKind, repo: string): string {
  const parts = repo.split('/');
  const ok = parts.every((p) => /^[\w.-]+$/.test(p) && p !== '.' && p !== '..');
  if (!ok || parts.length < 2 || (kind !== 'gitlab' && parts.length !== 2)) {
    const form = kind === 'gitlab' ? 'GROUP/[SUBGROUP/]NAME' : 'OWNER/NAME';
    throw new BerthError('ERR_BAD_REQUEST', `--git-api-repo "${repo}" is not of the form ${form}`);
  }
  return repo;
}

function parseHttpUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BerthError('ERR_BAD_REQUEST', `${what} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new BerthError('ERR_BAD_REQUEST', `${what} is not an http(s) URL`);
  return url;
}
