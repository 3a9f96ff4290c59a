/**
 * Push webhooks, split as ports and adapters: each provider is a small pure function that
 * verifies a delivery against the shared secret and classifies it; the fastify plugin
 * (webhook-routes.ts) is the only part that knows about HTTP.
 */

export type WebhookProvider = 'github' | 'gitlab' | 'gitea';

export const WEBHOOK_PROVIDERS: readonly WebhookProvider[] = ['github', 'gitlab', 'gitea'];

/** A delivery as received: header names in lower case, the body as the exact bytes sent. */
export interface WebhookDelivery {
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: Buffer;
}

/**
 * What a delivery is, once checked. Only `push` can lead to a reconcile, and only its `ref` is
 * looked at (to compare with the tracked branch): the reconcile re-reads git, never the payload.
 */
export type WebhookVerdict =
  | { kind: 'unauthorized'; reason: string }
  | { kind: 'invalid'; reason: string }
  | { kind: 'push'; deliveryId: string; ref: string }
  | { kind: 'ignored'; deliveryId: string; event: string };

export function headerOf(delivery: WebhookDelivery, name: string): string | undefined {
  const value = delivery.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The JSON document of a delivery: the body itself, or the `payload` field of a form-encoded body
 * (GitHub and Gitea both offer `application/x-www-form-urlencoded`).
 */
export function payloadOf(delivery: WebhookDelivery): Record<string, unknown> | null {
  const contentType = headerOf(delivery, 'content-type') ?? '';
  let text = delivery.body.toString('utf8');
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    text = new URLSearchParams(text).get('payload') ?? '';
  }
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** A verified delivery of `event` to a verdict: pushes carry their ref, everything else is ignored. */
export function classify(
  deliveryId: string,
  event: string,
  isPush: boolean,
  delivery: WebhookDelivery,
): WebhookVerdict {
  if (!isPush) return { kind: 'ignored', deliveryId, event };
  const payload = payloadOf(delivery);
  const ref = payload?.['ref'];
  if (typeof ref !== 'string') return { kind: 'invalid', reason: 'push payload without a "ref"' };
  return { kind: 'push', deliveryId, ref };
}
