import { hmacSha256HexMatches } from './hmac.js';
import { classify, headerOf, type WebhookDelivery, type WebhookVerdict } from './types.js';

/**
 * Gitea and Forgejo: the bare hex HMAC-SHA256 of the body in `X-Gitea-Signature` (Forgejo sends
 * `X-Forgejo-Signature` and, for compatibility, the same value as `X-Gitea-Signature`), the event
 * in `X-Gitea-Event` / `X-Forgejo-Event`, a per-delivery UUID in `X-Gitea-Delivery` /
 * `X-Forgejo-Delivery`. When the Forgejo header is present it is the one checked: a bad one is
 * not rescued by a good Gitea one.
 */
export async function verifyGiteaDelivery(
  secret: string,
  delivery: WebhookDelivery,
): Promise<WebhookVerdict> {
  const signature = headerOf(delivery, 'x-forgejo-signature') ?? headerOf(delivery, 'x-gitea-signature');
  if (!signature) return { kind: 'unauthorized', reason: 'missing X-Gitea-Signature' };
  if (!hmacSha256HexMatches(secret, delivery.body, signature)) {
    return { kind: 'unauthorized', reason: 'signature does not match the body' };
  }
  const deliveryId = headerOf(delivery, 'x-forgejo-delivery') ?? headerOf(delivery, 'x-gitea-delivery');
  if (!deliveryId) return { kind: 'invalid', reason: 'missing X-Gitea-Delivery' };
  const event = headerOf(delivery, 'x-forgejo-event') ?? headerOf(delivery, 'x-gitea-event') ?? '';
  return classify(deliveryId, event, event === 'push', delivery);
}
