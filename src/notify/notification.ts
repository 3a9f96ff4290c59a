/**
 * One thing that happened, as every Notifier type is told of it. The generic `webhook` type posts
 * exactly this object as JSON (docs/notifications.md); the chat types turn it into a message.
 */
import type { NotifierEvent } from '../manifests/types.js';

export interface Notification {
  event: NotifierEvent;
  /** The full commit id the event is about (for node-down: the revision the cluster was converging to). */
  revision: string;
  namespace?: string;
  service?: string;
  /** For node-down: the node. */
  node?: string;
  /** Why, for the failures; a berth error message (file:line of an invalid manifest, a health check). */
  reason?: string;
  /** `berth run --cluster-name`. */
  cluster?: string;
  /** ISO 8601. */
  at: string;
}

/** `3f2a9c1e0b7d`: as berth's logs and plans show a commit. */
export function shortId(revision: string): string {
  return /^[0-9a-f]{40}$/.test(revision) ? revision.slice(0, 12) : revision;
}

const HEADLINES: Record<NotifierEvent, string> = {
  deployed: 'deployed',
  'rolled-back': 'rolled back',
  failed: 'failed',
  invalid: 'refused as invalid',
  'node-down': 'node down',
  'job-failed': 'job failed',
};

/** `prod: 3f2a9c1e0b7d rolled back (shop/web)`: the one line every format starts with. */
export function headline(n: Notification): string {
  const where = n.cluster === undefined ? '' : `${n.cluster}: `;
  const what =
    n.event === 'node-down'
      ? `node ${n.node ?? '?'} is down`
      : `${shortId(n.revision)} ${HEADLINES[n.event]}`;
  const subject =
    n.service === undefined ? '' : ` (${n.namespace === undefined ? '' : `${n.namespace}/`}${n.service})`;
  return `${where}${what}${subject}`;
}

/**
 * Cuts `text` to at most `max` UTF-16 code units (so at most `max` characters however a service
 * counts them), saying so with an ellipsis; never splits a surrogate pair.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  return `${/[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut}…`;
}
