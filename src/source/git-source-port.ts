import type { CommitInfo, ReadFilesOptions, RepoFile } from './git-object-store.js';

/**
 * A git repository berth deploys from, read at exact commits. Two implementations: a local
 * repository read in place, and a remote one mirrored shallowly into a cache directory.
 */
export interface GitSource {
  readonly kind: 'local' | 'remote';
  /** The repository as given, with any credentials removed: safe to log and show. */
  readonly repo: string;
  /**
   * A branch, tag (annotated tags are peeled), `HEAD`, full ref name, or a full or abbreviated
   * commit id → the full commit id. For a remote, also makes that commit readable (fetching it).
   * Unknown → ERR_GIT_REF_NOT_FOUND naming the ref and the repository.
   */
  resolveRef(ref: string): Promise<string>;
  /**
   * The commit at the tip of `branch`, readable afterwards. For a remote this is one round trip
   * when the branch has not moved, and a depth-1 fetch of only what is new when it has.
   */
  headOf(branch: string): Promise<string>;
  /** Makes the commit that `ref` names readable and returns its id (same as resolveRef). */
  fetchCommit(ref: string): Promise<string>;
  /** The branch HEAD points at (a local checkout's branch; a remote's default branch). */
  defaultBranch(): Promise<string | undefined>;
  /**
   * Every file under `subPath` (default: the whole repository) at `commit`, paths relative to
   * `subPath`; by default only `.yaml`/`.yml`. Symlinks and submodules are skipped. A `subPath`
   * that is not a directory at that commit → ERR_GIT_REF_NOT_FOUND.
   */
  readFiles(commit: string, subPath?: string, options?: ReadFilesOptions): Promise<RepoFile[]>;
  commitInfo(commit: string): Promise<CommitInfo>;
  close(): Promise<void>;
}
