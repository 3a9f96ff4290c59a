/** Commit ids as berth shows and accepts them. */

/** Length of a revision in human output (logs, plans, `berth history`); labels keep the full id. */
export const SHORT_REVISION_LENGTH = 12;

/** `3f2a9c1e0b7d` for a full commit id: long enough to stay unique in big repositories. */
export function shortRevision(oid: string): string {
  return oid.slice(0, SHORT_REVISION_LENGTH);
}

/** A full SHA-1 commit id (40 lowercase hex digits). */
export function isCommitId(value: string): boolean {
  return /^[0-9a-f]{40}$/.test(value);
}

/**
 * Could be an abbreviated commit id: 4 to 40 hex digits, like `git rev-parse` accepts. Case is
 * ignored (`normalizeAbbreviatedId` lowercases it), since people paste ids from many tools.
 */
export function isAbbreviatedCommitId(value: string): boolean {
  return /^[0-9a-fA-F]{4,40}$/.test(value);
}

export function normalizeAbbreviatedId(value: string): string {
  return value.toLowerCase();
}
