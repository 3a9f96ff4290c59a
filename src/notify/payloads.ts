/**
 * The body each Notifier type posts, following each service's documented format:
 * - webhook: the Notification itself, as JSON (berth's own format, docs/notifications.md);
 * - slack: an incoming webhook message `{ text, blocks }` (api.slack.com/messaging/webhooks);
 *   `text` is the fallback of notifications, a section block's text is at most 3000 characters;
 * - discord: an execute-webhook body `{ content, embeds, allowed_mentions }`
 *   (discord.com/developers/docs/resources/webhook#execute-webhook); content at most 2000
 *   characters, an embed's title 256 and description 4096; no mention in a reason pings anyone;
 * - msteams: an Office 365 connector card `{ "@type": "MessageCard", "@context", summary, title, text }`
 *   (learn.microsoft.com/outlook/actionable-messages/message-card-reference), which Teams incoming
 *   webhooks and Workflows' "post to a channel when a webhook request is received" both take.
 * Pure: a Notification in, a JSON-ready object out.
 */
import type { NotifierEvent, NotifierType } from '../manifests/types.js';
import { headline, shortId, truncate, type Notification } from './notification.js';

/** Slack: a section block's text. */
export const SLACK_SECTION_MAX = 3000;
/** Slack truncates a message's text past 40000; 4000 keeps the fallback readable. */
export const SLACK_TEXT_MAX = 4000;
export const DISCORD_CONTENT_MAX = 2000;
export const DISCORD_TITLE_MAX = 256;
export const DISCORD_DESCRIPTION_MAX = 4096;
/** Teams refuses messages over about 28 KB; a reason is cut well before. */
export const MSTEAMS_TEXT_MAX = 8000;

/** Green for good news, red for bad, as each chat shows a colour bar. */
const COLOURS: Record<NotifierEvent, number> = {
  deployed: 0x2eb67d,
  'rolled-back': 0xe8a317,
  failed: 0xe01e5a,
  invalid: 0xe01e5a,
  'node-down': 0xe01e5a,
  'job-failed': 0xe01e5a,
};

export function buildPayload(type: NotifierType, n: Notification): unknown {
  switch (type) {
    case 'webhook':
      return webhookPayload(n);
    case 'slack':
      return slackPayload(n);
    case 'discord':
      return discordPayload(n);
    case 'msteams':
      return msTeamsPayload(n);
  }
}

/** Fields in a fixed order, absent ones left out. */
export function webhookPayload(n: Notification): Notification {
  return {
    event: n.event,
    revision: n.revision,
    ...(n.namespace === undefined ? {} : { namespace: n.namespace }),
    ...(n.service === undefined ? {} : { service: n.service }),
    ...(n.node === undefined ? {} : { node: n.node }),
    ...(n.reason === undefined ? {} : { reason: n.reason }),
    ...(n.cluster === undefined ? {} : { cluster: n.cluster }),
    at: n.at,
  };
}

/** Slack's mrkdwn treats &, < and > as control characters. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function slackPayload(n: Notification): { text: string; blocks: unknown[] } {
  const title = slackEscape(headline(n));
  const reason = n.reason === undefined ? '' : `\n${slackEscape(n.reason)}`;
  const text = truncate(`${title}${reason}`, SLACK_TEXT_MAX);
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: truncate(`*${title}*${reason}`, SLACK_SECTION_MAX) } },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `revision \`${shortId(n.revision)}\` · ${n.at}` }],
      },
    ],
  };
}

export function discordPayload(n: Notification): {
  content: string;
  embeds: unknown[];
  allowed_mentions: { parse: never[] };
} {
  const title = headline(n);
  return {
    content: truncate(n.reason === undefined ? title : `${title}: ${n.reason}`, DISCORD_CONTENT_MAX),
    embeds: [
      {
        title: truncate(title, DISCORD_TITLE_MAX),
        ...(n.reason === undefined ? {} : { description: truncate(n.reason, DISCORD_DESCRIPTION_MAX) }),
        color: COLOURS[n.event],
        timestamp: n.at,
        footer: { text: `revision ${shortId(n.revision)}` },
      },
    ],
    allowed_mentions: { parse: [] },
  };
}

export function msTeamsPayload(n: Notification): Record<string, string> {
  const title = headline(n);
  // MessageCard text is Markdown: a reason's own characters are not formatting.
  const reason = n.reason === undefined ? '' : n.reason.replace(/[\\`*_[\]<>#]/g, (c) => `\\${c}`);
  return {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: truncate(title, 256),
    themeColor: COLOURS[n.event].toString(16).padStart(6, '0'),
    title,
    text: truncate(reason === '' ? `revision ${shortId(n.revision)}` : reason, MSTEAMS_TEXT_MAX),
  };
}
