/**
 * Push webhook deliveries as GitHub, GitLab and Gitea send them: the fixture payloads under
 * test/fixtures/webhooks, signed here with node:crypto (independently of the code under test).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function webhookFixture(name: string, ref?: string): string {
  const text = readFileSync(fileURLToPath(new URL(`../fixtures/webhooks/${name}`, import.meta.url)), 'utf8');
  return ref === undefined ? text : text.replace('"ref": "refs/heads/main"', `"ref": "${ref}"`);
}

export interface SignedDelivery {
  headers: Record<string, string>;
  body: string;
}

const hmacHex = (secret: string, body: string): string =>
  createHmac('sha256', secret).update(body).digest('hex');

export function githubDelivery(
  secret: string,
  body: string,
  options: { event?: string; id?: string } = {},
): SignedDelivery {
  return {
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/8a2b3c4',
      'x-github-event': options.event ?? 'push',
      'x-github-delivery': options.id ?? randomUUID(),
      'x-github-hook-id': '471202345',
      'x-hub-signature-256': `sha256=${hmacHex(secret, body)}`,
    },
    body,
  };
}

export function gitlabDelivery(
  token: string,
  body: string,
  options: { event?: string; id?: string } = {},
): SignedDelivery {
  return {
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitLab/17.5.0',
      'x-gitlab-event': options.event ?? 'Push Hook',
      'x-gitlab-event-uuid': options.id ?? randomUUID(),
      'x-gitlab-instance': 'https://gitlab.example.com',
      'x-gitlab-token': token,
    },
    body,
  };
}

export function giteaDelivery(
  secret: string,
  body: string,
  options: { event?: string; id?: string; forgejo?: boolean } = {},
): SignedDelivery {
  const id = options.id ?? randomUUID();
  const event = options.event ?? 'push';
  const signature = hmacHex(secret, body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-delivery': id,
    'x-github-event': event,
    'x-gitea-delivery': id,
    'x-gitea-event': event,
    'x-gitea-signature': signature,
  };
  if (options.forgejo) {
    headers['x-forgejo-delivery'] = id;
    headers['x-forgejo-event'] = event;
    headers['x-forgejo-signature'] = signature;
  }
  return { headers, body };
}

export async function postDelivery(
  url: string,
  delivery: SignedDelivery,
): Promise<{ status: number; body: { result?: string; message?: string } }> {
  const response = await fetch(url, { method: 'POST', headers: delivery.headers, body: delivery.body });
  const text = await response.text();
  let body: { result?: string; message?: string } = {};
  try {
    body = JSON.parse(text) as { result?: string; message?: string };
  } catch {
    body = { message: text };
  }
  return { status: response.status, body };
}
