import fs from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import git, { type HttpClient } from 'isomorphic-git';

import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { markUsedAndPrune } from './cache-folders.js';
import { parseRevisionExpression, walkAncestry } from './revision-expression.js';
import { createGitHttpClient } from './git-http-client.js';
import { GitObjectStore, type CommitInfo, type ReadFilesOptions, type RepoFile } from './git-object-store.js';
import type { GitSource } from './git-source-port.js';
import { basicAuthorization, cacheKeyForUrl, type GitCredentials } from './remote-url.js';
import { isAbbreviatedCommitId, isCommitId, shortRevision } from './revision.js';
import { fsIndexingPacks, PackIndexedByBerth, MAX_INDEXED_OBJECT_BYTES } from './pack-indexer.js';
import { refNotFound, remoteError } from './source-errors.js';

/**
 * Written just before each single-ref fetch: isomorphic-git offers the server, as "have", only
 * the commit of the local ref named in `ref`. Pointing it at the best commit already cached (the
 * branch's previous head, else the last commit fetched) is what makes the fetch incremental.
 */
const HAVE_REF = 'refs/berth/have';
/** The last commit fetched from any ref: a useful "have" for a branch fetched for the first time. */
const LAST_FETCHED_REF = 'refs/berth/last-fetched';

/** Deepening a remote's history to find a commit id: each step 10x the previous one. */
const FIRST_SEARCH_DEPTH = 100;
const DEFAULT_MAX_SEARCH_DEPTH = 10_000;
/**
 * Every fetch adds one pack file, and isomorphic-git cannot repack; each object read consults
 * every pack index. Past this many packs the cache starts over with a fresh depth-1 fetch (one
 * full download of the branch head); older commits are fetched again when asked for.
 */
const DEFAULT_MAX_CACHE_PACKS = 64;
/**
 * ... or once its pack files add up to this (512 MiB): with each fetch capped at 100 MiB (see
 * git-http-client.ts), the cache of one repository stays under about 612 MiB on disk.
 */
const DEFAULT_MAX_CACHE_BYTES = 512 * 1024 * 1024;
/** Remotes whose caches are kept: the one opened and the most recently used others. */
const DEFAULT_MAX_CACHED_REMOTES = 4;

interface ServerRef {
  oid: string;
  /** For an annotated tag: the commit it points at. */
  peeled?: string;
  /** For a symbolic ref (HEAD): the ref it points at. */
  target?: string;
}

/** The cache directory of `url` under `cacheDir`: a bare git dir written by isomorphic-git. */
export function remoteCachePath(cacheDir: string, url: string): string {
  return join(cacheDir, cacheKeyForUrl(url));
}

export async function openRemoteGitSource(options: {
  url: string;
  cacheDir: string;
  log: Logger;
  credentials?: GitCredentials;
  httpTimeoutMs?: number;
  maxSearchDepth?: number;
  maxCachePacks?: number;
  maxCacheBytes?: number;
  maxCachedRemotes?: number;
}): Promise<GitSource> {
  const gitdir = remoteCachePath(options.cacheDir, options.url);
  await initCache(gitdir, options.url);
  await markUsedAndPrune(gitdir, options.maxCachedRemotes ?? DEFAULT_MAX_CACHED_REMOTES, options.log);
  return new RemoteGitSource(
    options.url,
    gitdir,
    options.log.child({ repo: options.url }),
    createGitHttpClient(options.httpTimeoutMs === undefined ? {} : { timeoutMs: options.httpTimeoutMs }),
    options.credentials,
    {
      maxSearchDepth: options.maxSearchDepth ?? DEFAULT_MAX_SEARCH_DEPTH,
      maxCachePacks: options.maxCachePacks ?? DEFAULT_MAX_CACHE_PACKS,
      maxCacheBytes: options.maxCacheBytes ?? DEFAULT_MAX_CACHE_BYTES,
    },
  );
}

async function initCache(gitdir: string, url: string): Promise<void> {
  await mkdir(gitdir, { recursive: true });
  // Both are idempotent: init leaves an existing repository alone, and the remote is rewritten
  // in case an earlier run stopped between the two.
  await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' });
  await git.addRemote({ fs, gitdir, remote: 'origin', url, force: true });
}

/**
 * A remote repository mirrored shallowly: only the commits berth has asked for (branch heads at
 * depth 1, tags and commit ids on demand) are in the cache. Asking whether a branch has moved is
 * one GET of the server's ref list; a fetch happens only when the answer is a commit not cached.
 *
 * Every operation runs one at a time, reads included: a fetch may start the cache over (see
 * DEFAULT_MAX_CACHE_PACKS), and a read must not see that half done. Reads of cached commits take
 * milliseconds, so the wait is at most one fetch. (Two berth processes sharing one cache directory
 * are not coordinated.)
 */
class RemoteGitSource implements GitSource {
  readonly kind = 'remote';
  private store: GitObjectStore;
  private readonly headers: Record<string, string>;
  private queue: Promise<unknown> = Promise.resolve();
  /** node:fs for fetches: packs are indexed by berth, in bounded memory (see pack-indexer.ts). */
  private readonly fetchFs = fsIndexingPacks((oid) => this.readDeltaBase(oid));

  constructor(
    /** Without credentials (they travel only in the Authorization header). */
    readonly repo: string,
    readonly gitdir: string,
    private readonly log: Logger,
    private readonly http: HttpClient,
    credentials: GitCredentials | undefined,
    private readonly limits: { maxSearchDepth: number; maxCachePacks: number; maxCacheBytes: number },
  ) {
    this.store = new GitObjectStore(gitdir, repo);
    // Sent up front rather than from an onAuth callback: isomorphic-git calls onAuth only after a
    // 401, which would double the round trips of every poll of a private repository.
    this.headers = credentials === undefined ? {} : { Authorization: basicAuthorization(credentials) };
  }

  headOf(branch: string): Promise<string> {
    return this.serialize(async () => {
      const refs = await this.listServerRefs();
      const head = refs.get(`refs/heads/${branch}`);
      if (head === undefined)
        throw refNotFound(branch, this.repo, `no such branch (${describeBranches(refs)})`);
      if (await this.store.hasCommit(head.oid)) {
        this.log.debug({ branch, revision: shortRevision(head.oid) }, 'branch head already cached');
        await this.recordBranchHead(branch, head.oid);
        return head.oid;
      }
      const fetched = await this.fetchShallow(`refs/heads/${branch}`, branch, head.oid);
      const commit = await this.store.peelToCommit(fetched, branch);
      await this.recordBranchHead(branch, commit);
      return commit;
    });
  }

  resolveRef(ref: string): Promise<string> {
    return this.serialize(() => this.resolveUnlocked(ref));
  }

  fetchCommit(ref: string): Promise<string> {
    return this.resolveRef(ref);
  }

  async defaultBranch(): Promise<string | undefined> {
    const refs = await this.serialize(() => this.listServerRefs());
    return refs.get('HEAD')?.target?.replace(/^refs\/heads\//, '');
  }

  readFiles(commit: string, subPath?: string, options?: ReadFilesOptions): Promise<RepoFile[]> {
    return this.serialize(async () =>
      this.store.readFiles(await this.readableCommit(commit), subPath, options),
    );
  }

  commitInfo(commit: string): Promise<CommitInfo> {
    return this.serialize(async () => this.store.commitInfo(await this.readableCommit(commit)));
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
  }

  /** A commit id already cached is read without any network call. */
  private async readableCommit(commit: string): Promise<string> {
    if (isCommitId(commit) && (await this.store.hasCommit(commit))) return commit;
    return this.resolveUnlocked(commit);
  }

  private async resolveUnlocked(ref: string): Promise<string> {
    const expression = parseRevisionExpression(ref);
    if (expression !== null) {
      const start = await this.resolveUnlocked(expression.base);
      const found = await walkAncestry(
        start,
        { text: ref, repo: this.repo, steps: expression.steps },
        // The cache is shallow: each commit walked through is fetched by its id when missing.
        async (commit) => (await this.store.commitInfo(await this.ensureObject(commit))).parents,
      );
      return this.store.peelToCommit(await this.ensureObject(found), ref);
    }
    if (isCommitId(ref)) return this.store.peelToCommit(await this.ensureObject(ref), ref);

    const refs = await this.listServerRefs();
    // `origin/main` is the remote's branch main: the remote berth follows is its origin.
    const remoteTracking = ref.startsWith('origin/') ? [`refs/heads/${ref.slice('origin/'.length)}`] : [];
    for (const name of [ref, `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`, ...remoteTracking]) {
      const serverRef = refs.get(name);
      if (serverRef === undefined) continue;
      const branch = name.startsWith('refs/heads/') ? name.slice('refs/heads/'.length) : undefined;
      const listed = serverRef.peeled ?? serverRef.oid;
      const commit = (await this.store.hasCommit(listed))
        ? listed
        : await this.store.peelToCommit(await this.fetchShallow(name, branch, serverRef.oid), ref);
      if (branch !== undefined) await this.recordBranchHead(branch, commit);
      return commit;
    }

    if (isAbbreviatedCommitId(ref)) {
      // A server can be asked for a full id but never for a prefix: look in the cache, then
      // deepen history until the prefix shows up.
      const expanded =
        (await this.store.expandAbbreviated(ref)) ??
        (await this.deepenUntil(() => this.store.expandAbbreviated(ref)));
      if (expanded !== undefined) return this.store.peelToCommit(expanded, ref);
      throw refNotFound(
        ref,
        this.repo,
        `not a branch or tag, and no commit id starts with it ${this.searchedScope()}`,
      );
    }
    throw refNotFound(ref, this.repo, `not a branch, tag or commit id (${describeBranches(refs)})`);
  }

  /**
   * Makes the object `oid` (a commit, or an annotated tag) present in the cache. First a direct
   * fetch of that id at depth 1: git's HTTP backend, GitHub and GitLab all serve any commit
   * reachable from a ref. Servers that refuse it get their history deepened until it appears.
   */
  private async ensureObject(oid: string): Promise<string> {
    if (await this.store.hasObject(oid)) return oid;
    try {
      await this.fetchShallow(oid, undefined, oid);
    } catch (error) {
      if (isUnreachableError(error))
        throw remoteError(error, this.repo, `fetching ${shortRevision(oid)} from`);
      this.log.debug(
        { revision: shortRevision(oid), err: error },
        'server refused a fetch by commit id; deepening history',
      );
    }
    if (await this.store.hasObject(oid)) return oid;
    const found = await this.deepenUntil(async () => ((await this.store.hasObject(oid)) ? oid : undefined));
    if (found !== undefined) return found;
    throw refNotFound(oid, this.repo, `no such commit on any branch or tag ${this.searchedScope()}`);
  }

  /**
   * Fetches one ref or commit id at depth 1, offering the best cached commit as common base.
   * `listed` is the object the server listed for the ref: when berth indexes the pack itself (see
   * PackIndexedByBerth) isomorphic-git returns no fetch head, and this is what was asked for.
   */
  private async fetchShallow(remoteRef: string, branch: string | undefined, listed: string): Promise<string> {
    await this.compactIfNeeded();
    const have =
      (branch === undefined ? undefined : await this.store.resolveRefName(`refs/heads/${branch}`)) ??
      (await this.store.resolveRefName(LAST_FETCHED_REF));
    if (have === undefined) {
      await git.deleteRef({ fs, gitdir: this.gitdir, ref: HAVE_REF }).catch(() => undefined);
    } else {
      await git.writeRef({ fs, gitdir: this.gitdir, ref: HAVE_REF, value: have, force: true });
    }
    const label = isCommitId(remoteRef) ? shortRevision(remoteRef) : remoteRef;
    const result = await git
      .fetch({
        fs: this.fetchFs,
        http: this.http,
        gitdir: this.gitdir,
        url: this.repo,
        headers: this.headers,
        ref: HAVE_REF,
        remoteRef,
        singleBranch: true,
        depth: 1,
        tags: false,
      })
      .catch((error: unknown) => {
        if (error instanceof PackIndexedByBerth) return { fetchHead: listed, indexedByBerth: true };
        throw remoteError(error, this.repo, `fetching ${label} from`);
      });
    if ('indexedByBerth' in result && !(await this.store.hasObject(listed))) {
      throw new BerthError(
        'ERR_GIT_SOURCE',
        `${label} of ${this.repo} moved while it was being fetched; it is fetched again on the next check`,
        { data: { repo: this.repo, ref: remoteRef } },
      );
    }
    if (result.fetchHead === null) {
      throw new BerthError('ERR_GIT_REF_NOT_FOUND', `${this.repo} is an empty repository (no commits)`, {
        data: { repo: this.repo, ref: remoteRef },
      });
    }
    await git.writeRef({
      fs,
      gitdir: this.gitdir,
      ref: LAST_FETCHED_REF,
      value: result.fetchHead,
      force: true,
    });
    this.log.info({ ref: label, revision: shortRevision(result.fetchHead) }, 'fetched from remote');
    return result.fetchHead;
  }

  /**
   * Deepens every branch and tag, 100 → 1000 → 10000 commits (up to maxSearchDepth), until
   * `probe` finds what it is looking for; stops early once the whole history is cached.
   */
  private async deepenUntil(probe: () => Promise<string | undefined>): Promise<string | undefined> {
    const refs = await this.listServerRefs();
    const anchor = refs.has('HEAD')
      ? 'HEAD'
      : [...refs.keys()].find((name) => name.startsWith('refs/heads/'));
    if (anchor === undefined) return undefined;
    for (
      let depth = Math.min(FIRST_SEARCH_DEPTH, this.limits.maxSearchDepth);
      ;
      depth = Math.min(depth * 10, this.limits.maxSearchDepth)
    ) {
      this.log.info({ depth }, 'deepening remote history to find a commit');
      await git
        .fetch({
          fs: this.fetchFs,
          http: this.http,
          gitdir: this.gitdir,
          url: this.repo,
          headers: this.headers,
          ref: HAVE_REF,
          remoteRef: anchor,
          singleBranch: false,
          depth,
          tags: true,
        })
        .catch((error: unknown) => {
          if (error instanceof PackIndexedByBerth) return;
          throw remoteError(error, this.repo, 'deepening history of');
        });
      const found = await probe();
      if (found !== undefined) return found;
      if ((await this.hasCompleteHistory()) || depth >= this.limits.maxSearchDepth) return undefined;
    }
  }

  private async compactIfNeeded(): Promise<void> {
    const packDir = join(this.gitdir, 'objects', 'pack');
    const packs = (await readdir(packDir).catch(() => [] as string[])).filter((name) =>
      name.endsWith('.pack'),
    );
    let bytes = 0;
    for (const name of packs) bytes += (await stat(join(packDir, name)).catch(() => ({ size: 0 }))).size;
    if (packs.length < this.limits.maxCachePacks && bytes < this.limits.maxCacheBytes) return;
    this.log.info(
      { packs: packs.length, bytes },
      'starting the remote cache over: too many or too large pack files',
    );
    await rm(this.gitdir, { recursive: true, force: true });
    await initCache(this.gitdir, this.repo);
    this.store = new GitObjectStore(this.gitdir, this.repo);
  }

  /** A cached object a thin pack's delta is based on, if small enough to hold (else the pack is refused). */
  private async readDeltaBase(
    oid: string,
  ): Promise<{ type: 'commit' | 'tree' | 'blob' | 'tag'; object: Uint8Array } | undefined> {
    const size = await this.store.objectSize(oid);
    if (size === undefined) return undefined;
    if (size > MAX_INDEXED_OBJECT_BYTES) {
      throw new BerthError(
        'ERR_GIT_SOURCE',
        `a fetched delta is based on cached object ${shortRevision(oid)} of ${size} bytes, over the ${MAX_INDEXED_OBJECT_BYTES}-byte limit for delta bases; refused`,
        { data: { repo: this.repo, oid, size } },
      );
    }
    const { type, object } = await git.readObject({ fs, gitdir: this.gitdir, oid, format: 'content' });
    return { type: type as 'commit' | 'tree' | 'blob' | 'tag', object: object as Uint8Array };
  }

  /** No shallow boundary left: every commit of every fetched ref is cached. */
  private async hasCompleteHistory(): Promise<boolean> {
    const shallow = await readFile(join(this.gitdir, 'shallow'), 'utf8').catch(() => '');
    return shallow.trim() === '';
  }

  private searchedScope(): string {
    return `(searched up to ${this.limits.maxSearchDepth} commits back)`;
  }

  /** One GET of `info/refs` (protocol v1): v2 would need a second request to list the refs. */
  private async listServerRefs(): Promise<Map<string, ServerRef>> {
    try {
      const refs = await git.listServerRefs({
        http: this.http,
        url: this.repo,
        headers: this.headers,
        protocolVersion: 1,
        peelTags: true,
        symrefs: true,
      });
      return new Map(
        refs.map((ref) => [
          ref.ref,
          {
            oid: ref.oid,
            ...(ref.peeled === undefined ? {} : { peeled: ref.peeled }),
            ...(ref.target === undefined ? {} : { target: ref.target }),
          },
        ]),
      );
    } catch (error) {
      throw remoteError(error, this.repo, 'listing refs of');
    }
  }

  /** The cache's own refs/heads mirror the server, and serve as "have" for the next fetch. */
  private async recordBranchHead(branch: string, commit: string): Promise<void> {
    if ((await this.store.resolveRefName(`refs/heads/${branch}`)) === commit) return;
    await git.writeRef({ fs, gitdir: this.gitdir, ref: `refs/heads/${branch}`, value: commit, force: true });
  }

  private serialize<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.queue.then(operation, operation);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** Errors where trying a different way of fetching cannot help. */
function isUnreachableError(error: unknown): boolean {
  if (!(error instanceof BerthError)) return false;
  const cause = error.cause as { code?: unknown } | undefined;
  return cause?.code === 'HttpError' || /cannot reach the server/.test(error.message);
}

function describeBranches(refs: Map<string, ServerRef>): string {
  const branches = [...refs.keys()]
    .filter((name) => name.startsWith('refs/heads/'))
    .map((name) => name.slice(11));
  if (branches.length === 0) return 'the server has no branches';
  const shown = branches.slice(0, 10).join(', ');
  return `branches: ${shown}${branches.length > 10 ? `, and ${branches.length - 10} more` : ''}`;
}
