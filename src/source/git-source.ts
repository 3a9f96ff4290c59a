import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Logger } from '../core/log.js';
import { findGitDir } from './git-dir.js';
import { GitObjectStore, type CommitInfo, type ReadFilesOptions, type RepoFile } from './git-object-store.js';
import type { GitSource } from './git-source-port.js';
import { openRemoteGitSource } from './remote-git-source.js';
import { parseRevisionExpression, walkAncestry } from './revision-expression.js';
import { refNotFound } from './source-errors.js';
import { credentialsFromEnv, parseRepoLocation, type GitCredentials } from './remote-url.js';
import { isAbbreviatedCommitId, isCommitId } from './revision.js';

export type { CommitInfo, ReadFilesOptions, RepoFile } from './git-object-store.js';
export type { GitSource } from './git-source-port.js';
export type { GitCredentials } from './remote-url.js';

export interface OpenGitSourceOptions {
  /** A local path (working or bare repository, or `file://` URL) or an http(s) URL. */
  repo: string;
  /** Where remote repositories are mirrored (`<cacheDir>/<hash of URL>/`); unused for local paths. */
  cacheDir: string;
  log: Logger;
  /**
   * Credentials for an http(s) remote. Without them, credentials written in the URL are used, then
   * BERTH_GIT_USERNAME / BERTH_GIT_PASSWORD from the environment.
   */
  auth?: GitCredentials;
  /** Inactivity timeout of each HTTP request to a remote. */
  httpTimeoutMs?: number;
  /**
   * How far back to deepen a remote's history when looking for a commit id that is not reachable
   * by a direct fetch (default 10000 commits).
   */
  maxSearchDepth?: number;
  /**
   * A remote's cache starts over (one fresh depth-1 fetch) once it holds this many pack files,
   * one being added per fetch (default 64).
   */
  maxCachePacks?: number;
  /** ... or once its pack files add up to this many bytes (default 512 MiB). */
  maxCacheBytes?: number;
}

export async function openGitSource(options: OpenGitSourceOptions): Promise<GitSource> {
  const location = parseRepoLocation(options.repo);
  if (location.kind === 'local') {
    const layout = await findGitDir(location.path);
    options.log.debug(
      { repo: location.path, gitdir: layout.gitdir },
      'reading local git repository in place',
    );
    return new LocalGitSource(location.path, layout.gitdir, layout.headDir);
  }
  const credentials = options.auth ?? location.credentials ?? credentialsFromEnv();
  return openRemoteGitSource({
    url: location.url,
    cacheDir: options.cacheDir,
    log: options.log,
    ...(credentials === undefined ? {} : { credentials }),
    ...(options.httpTimeoutMs === undefined ? {} : { httpTimeoutMs: options.httpTimeoutMs }),
    ...(options.maxSearchDepth === undefined ? {} : { maxSearchDepth: options.maxSearchDepth }),
    ...(options.maxCachePacks === undefined ? {} : { maxCachePacks: options.maxCachePacks }),
    ...(options.maxCacheBytes === undefined ? {} : { maxCacheBytes: options.maxCacheBytes }),
  });
}

/** A repository on this machine, read in place (no copy, no fetch). */
class LocalGitSource implements GitSource {
  readonly kind = 'local';
  private readonly store: GitObjectStore;

  constructor(
    readonly repo: string,
    gitdir: string,
    /** Differs from gitdir only for a linked worktree, whose own HEAD lives apart. */
    private readonly headDir: string,
  ) {
    this.store = new GitObjectStore(gitdir, repo);
  }

  async resolveRef(ref: string): Promise<string> {
    const expression = parseRevisionExpression(ref);
    if (expression !== null) {
      const start = await this.resolveRef(expression.base);
      return walkAncestry(
        start,
        { text: ref, repo: this.repo, steps: expression.steps },
        async (commit) => (await this.store.commitInfo(commit)).parents,
      );
    }
    if (isCommitId(ref)) {
      if (await this.store.hasCommit(ref)) return ref;
      throw refNotFound(ref, this.repo, 'no such commit');
    }
    const named = ref === 'HEAD' ? await this.readHead() : await this.store.resolveRefName(ref);
    if (named !== undefined) return this.store.peelToCommit(named, ref);
    if (isAbbreviatedCommitId(ref)) {
      const expanded = await this.store.expandAbbreviated(ref);
      if (expanded !== undefined) return this.store.peelToCommit(expanded, ref);
    }
    throw refNotFound(ref, this.repo, 'not a branch, tag, remote-tracking branch or commit id');
  }

  async headOf(branch: string): Promise<string> {
    const oid = await this.store.resolveRefName(`refs/heads/${branch}`);
    if (oid === undefined) throw refNotFound(branch, this.repo, 'no such branch');
    return this.store.peelToCommit(oid, branch);
  }

  fetchCommit(ref: string): Promise<string> {
    return this.resolveRef(ref);
  }

  async defaultBranch(): Promise<string | undefined> {
    const head = await readFile(join(this.headDir, 'HEAD'), 'utf8');
    return /^ref: refs\/heads\/(.+)$/m.exec(head.trim())?.[1];
  }

  async readFiles(commit: string, subPath?: string, options?: ReadFilesOptions): Promise<RepoFile[]> {
    return this.store.readFiles(await this.resolveRef(commit), subPath, options);
  }

  async commitInfo(commit: string): Promise<CommitInfo> {
    return this.store.commitInfo(await this.resolveRef(commit));
  }

  async close(): Promise<void> {}

  /** A linked worktree's HEAD is its own, not the main repository's, so read it from headDir. */
  private async readHead(): Promise<string | undefined> {
    const head = (await readFile(join(this.headDir, 'HEAD'), 'utf8')).trim();
    const symbolic = /^ref: (.+)$/.exec(head);
    if (symbolic?.[1] === undefined) return isCommitId(head) ? head : undefined;
    return this.store.resolveRefName(symbolic[1]);
  }
}
