import type { LoadResult } from '../manifests/types.js';

/** What the operator needs from git: revisions and the manifests at a revision. */
export interface RevisionSource {
  /** A human name for logs and status, e.g. the URL or path and branch. */
  readonly description: string;
  readonly branch: string;
  /** The commit the tracked branch points at now. */
  head(): Promise<string>;
  /** A branch, tag or (abbreviated) commit id to a full commit id. */
  resolve(ref: string): Promise<string>;
  load(revision: string): Promise<LoadResult>;
  commitInfo(revision: string): Promise<{ author: string; message: string; timestamp: number } | null>;
}
