import fs from 'node:fs';

import git from 'isomorphic-git';
import pLimit, { type LimitFunction } from 'p-limit';

import { BerthError } from '../core/errors.js';
import { isAbbreviatedCommitId, normalizeAbbreviatedId, shortRevision } from './revision.js';

/** A file read from a git tree. */
export interface RepoFile {
  /** Relative to the directory that was read, POSIX separators. */
  path: string;
  content: Uint8Array;
}

export interface CommitInfo {
  oid: string;
  message: string;
  author: { name: string; email: string; timestamp: number };
  committer: { name: string; email: string; timestamp: number };
  parents: string[];
}

export interface ReadFilesOptions {
  /**
   * Only files whose name ends with one of these (case-insensitive) are returned; an empty list
   * returns every file. Default `['.yaml', '.yml']`.
   */
  extensions?: readonly string[];
}

export const DEFAULT_MANIFEST_EXTENSIONS: readonly string[] = ['.yaml', '.yml'];

const MODE_TREE = '040000';
const MODE_SYMLINK = '120000';
const MODE_SUBMODULE = '160000';

/** Blob reads in flight at once: enough to overlap I/O, few enough to stay clear of EMFILE. */
const BLOB_READ_CONCURRENCY = 32;

/** Tag objects can point at tags; git itself gives up peeling well before this. */
const MAX_TAG_CHAIN = 16;

/**
 * Read access to the objects and refs of one git dir, without a working tree: every read goes
 * through the object database, so what is read is exactly what was committed (a dirty checkout or
 * an unfinished `git pull` cannot leak into a deployment).
 */
export class GitObjectStore {
  /** isomorphic-git keeps parsed pack indexes here; without it every read re-parses them. */
  private readonly objectCache = {};

  constructor(
    readonly gitdir: string,
    /** The repository as shown to people (credentials removed), for error messages. */
    private readonly repoLabel: string,
  ) {}

  async hasCommit(oid: string): Promise<boolean> {
    try {
      await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.objectCache });
      return true;
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError') || isGitErrorCode(error, 'ObjectTypeError')) return false;
      throw error;
    }
  }

  /** The object a ref name points at (`main`, `v1`, `refs/heads/x`, `HEAD`), or undefined. */
  async resolveRefName(ref: string): Promise<string | undefined> {
    try {
      return await git.resolveRef({ fs, gitdir: this.gitdir, ref });
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError')) return undefined;
      throw error;
    }
  }

  /**
   * The full id for an abbreviated one present in this store, or undefined. Throws when the
   * prefix matches several objects, listing them, as `git rev-parse` does.
   */
  async expandAbbreviated(prefix: string): Promise<string | undefined> {
    if (!isAbbreviatedCommitId(prefix)) return undefined;
    try {
      return await git.expandOid({
        fs,
        gitdir: this.gitdir,
        oid: normalizeAbbreviatedId(prefix),
        cache: this.objectCache,
      });
    } catch (error) {
      if (isGitErrorCode(error, 'NotFoundError')) return undefined;
      if (isGitErrorCode(error, 'AmbiguousError')) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `commit id ${prefix} is ambiguous in ${this.repoLabel}; give more digits`,
          { data: { repo: this.repoLabel, ref: prefix }, cause: error },
        );
      }
      throw error;
    }
  }

  /** Follows annotated tags down to the commit; `ref` names the input in the error message. */
  async peelToCommit(oid: string, ref: string): Promise<string> {
    let current = oid;
    for (let step = 0; step < MAX_TAG_CHAIN; step++) {
      const { type, object } = await git.readObject({
        fs,
        gitdir: this.gitdir,
        oid: current,
        format: 'parsed',
        cache: this.objectCache,
      });
      if (type === 'commit') return current;
      if (type === 'tag') {
        current = (object as { object: string }).object;
        continue;
      }
      throw new BerthError(
        'ERR_GIT_REF_NOT_FOUND',
        `"${ref}" in ${this.repoLabel} names a ${type}, not a commit`,
        {
          data: { repo: this.repoLabel, ref },
        },
      );
    }
    throw new BerthError(
      'ERR_GIT_REF_NOT_FOUND',
      `"${ref}" in ${this.repoLabel} is a chain of too many tags`,
      {
        data: { repo: this.repoLabel, ref },
      },
    );
  }

  async commitInfo(oid: string): Promise<CommitInfo> {
    const { commit } = await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.objectCache });
    return {
      oid,
      message: commit.message,
      author: { name: commit.author.name, email: commit.author.email, timestamp: commit.author.timestamp },
      committer: {
        name: commit.committer.name,
        email: commit.committer.email,
        timestamp: commit.committer.timestamp,
      },
      parents: [...commit.parent],
    };
  }

  /**
   * Every file under `subPath` in the tree of `commit`, read from the object database (no
   * checkout), sorted by path.
   *
   * Skipped on purpose:
   * - symlinks (mode 120000): the blob is the link's target path, not content; following it
   *   could leave `subPath` or the repository, and it would mean something different on every
   *   checkout. Manifests must be regular files.
   * - submodules (mode 160000): the entry is a commit of another repository, whose objects are
   *   not in this one.
   *
   * No size limit is applied here: isomorphic-git learns a blob's size only by inflating it, so a
   * guard here would not save the memory it is meant to save. The manifest loader reports files
   * that are too large, with their path.
   */
  async readFiles(commit: string, subPath = '', options: ReadFilesOptions = {}): Promise<RepoFile[]> {
    const extensions = (options.extensions ?? DEFAULT_MANIFEST_EXTENSIONS).map((extension) =>
      extension.toLowerCase(),
    );
    const segments = splitSubPath(subPath);
    const { commit: commitObject } = await git.readCommit({
      fs,
      gitdir: this.gitdir,
      oid: commit,
      cache: this.objectCache,
    });

    let treeOid = commitObject.tree;
    for (const [index, segment] of segments.entries()) {
      const { tree } = await git.readTree({ fs, gitdir: this.gitdir, oid: treeOid, cache: this.objectCache });
      const entry = tree.find((candidate) => candidate.path === segment);
      const walked = segments.slice(0, index + 1).join('/');
      if (entry === undefined) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `path "${segments.join('/')}" does not exist at commit ${shortRevision(commit)} of ${this.repoLabel}` +
            (walked === segments.join('/') ? '' : ` (no "${walked}")`),
          { data: { repo: this.repoLabel, commit, path: segments.join('/') } },
        );
      }
      if (entry.mode !== MODE_TREE) {
        throw new BerthError(
          'ERR_GIT_REF_NOT_FOUND',
          `path "${walked}" at commit ${shortRevision(commit)} of ${this.repoLabel} is not a directory`,
          { data: { repo: this.repoLabel, commit, path: segments.join('/') } },
        );
      }
      treeOid = entry.oid;
    }

    const files: RepoFile[] = [];
    await this.collectFiles(treeOid, '', extensions, files, pLimit(BLOB_READ_CONCURRENCY));
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private async collectFiles(
    treeOid: string,
    prefix: string,
    extensions: string[],
    into: RepoFile[],
    limit: LimitFunction,
  ): Promise<void> {
    const { tree } = await git.readTree({ fs, gitdir: this.gitdir, oid: treeOid, cache: this.objectCache });
    await Promise.all(
      tree.map(async (entry) => {
        const path = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
        if (entry.mode === MODE_TREE) return this.collectFiles(entry.oid, path, extensions, into, limit);
        if (entry.mode === MODE_SYMLINK || entry.mode === MODE_SUBMODULE || entry.type !== 'blob') return;
        const name = entry.path.toLowerCase();
        if (extensions.length > 0 && !extensions.some((extension) => name.endsWith(extension))) return;
        const { blob } = await limit(() =>
          git.readBlob({ fs, gitdir: this.gitdir, oid: entry.oid, cache: this.objectCache }),
        );
        into.push({ path, content: blob });
      }),
    );
  }
}

/** `./deploy/prod/` → ['deploy', 'prod']; '' or '.' → [] (the repository root). */
export function splitSubPath(subPath: string): string[] {
  const segments = subPath.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) {
    throw new BerthError('ERR_BAD_REQUEST', `path "${subPath}" must stay inside the repository (no "..")`, {
      data: { path: subPath },
    });
  }
  return segments;
}

/** isomorphic-git errors carry a string `code` equal to their class name. */
export function isGitErrorCode(error: unknown, code: string): boolean {
  return error !== null && typeof error === 'object' && (error as { code?: unknown }).code === code;
}
