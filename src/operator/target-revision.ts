/**
 * The one fallback rule. The cluster converges on the branch head; when the head failed (recorded
 * earlier, or refused by preflight now) it converges on the last good revision instead, so drift
 * is still repaired, and the failed head is not retried until a newer commit arrives. Null: there
 * is nothing to converge on (no good revision yet, or the head is the last good one and failed).
 */
export function targetRevision(head: string, headFailed: boolean, lastGood: string | null): string | null {
  if (!headFailed) return head;
  return lastGood === head ? null : lastGood;
}
