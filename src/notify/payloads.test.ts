import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Notification } from './notification.js';
import {
  DISCORD_CONTENT_MAX,
  DISCORD_DESCRIPTION_MAX,
  MSTEAMS_TEXT_MAX,
  SLACK_SECTION_MAX,
  SLACK_TEXT_MAX,
  buildPayload,
  discordPayload,
  msTeamsPayload,
  slackPayload,
} from './payloads.js';

const A = '3f2a9c1e0b7d' + 'a'.repeat(28);
const at = '2025-01-02T03:04:05.000Z';
const rolledBack: Notification = {
  event: 'rolled-back',
  revision: A,
  namespace: 'shop',
  service: 'web',
  reason: 'shop/web: replica exited <1> & @everyone',
  cluster: 'prod',
  at,
};

test('webhook: the documented JSON body, fields in order, absent ones left out', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(buildPayload('webhook', rolledBack))), {
    event: 'rolled-back',
    revision: A,
    namespace: 'shop',
    service: 'web',
    reason: 'shop/web: replica exited <1> & @everyone',
    cluster: 'prod',
    at,
  });
  assert.deepEqual(Object.keys(buildPayload('webhook', { event: 'deployed', revision: A, at }) as object), [
    'event',
    'revision',
    'at',
  ]);
});

test('slack: text plus a section and a context block, mrkdwn control characters escaped', () => {
  const body = slackPayload(rolledBack);
  assert.equal(
    body.text,
    'prod: 3f2a9c1e0b7d rolled back (shop/web)\nshop/web: replica exited &lt;1&gt; &amp; @everyone',
  );
  assert.deepEqual(body.blocks[0], {
    type: 'section',
    text: {
      type: 'mrkdwn',
      text: '*prod: 3f2a9c1e0b7d rolled back (shop/web)*\nshop/web: replica exited &lt;1&gt; &amp; @everyone',
    },
  });
  assert.deepEqual(body.blocks[1], {
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `revision \`3f2a9c1e0b7d\` · ${at}` }],
  });
});

test('discord: content, one embed with colour and timestamp, and mentions in a reason ping nobody', () => {
  const body = discordPayload(rolledBack);
  assert.equal(
    body.content,
    'prod: 3f2a9c1e0b7d rolled back (shop/web): shop/web: replica exited <1> & @everyone',
  );
  assert.deepEqual(body.allowed_mentions, { parse: [] });
  assert.deepEqual(body.embeds, [
    {
      title: 'prod: 3f2a9c1e0b7d rolled back (shop/web)',
      description: 'shop/web: replica exited <1> & @everyone',
      color: 0xe8a317,
      timestamp: at,
      footer: { text: 'revision 3f2a9c1e0b7d' },
    },
  ]);
});

test('msteams: a MessageCard with @type, @context, summary, title and text', () => {
  assert.deepEqual(msTeamsPayload({ event: 'deployed', revision: A, at }), {
    '@type': 'MessageCard',
    '@context': 'https://schema.org/extensions',
    summary: '3f2a9c1e0b7d deployed',
    themeColor: '2eb67d',
    title: '3f2a9c1e0b7d deployed',
    text: 'revision 3f2a9c1e0b7d',
  });
  assert.equal(msTeamsPayload({ ...rolledBack, reason: 'a *b* _c_' })['text'], 'a \\*b\\* \\_c\\_');
});

test('a long reason is cut to each service limit, with an ellipsis, never inside a surrogate pair', () => {
  const long = { ...rolledBack, reason: '😀'.repeat(6000) };
  const slack = slackPayload(long);
  assert.ok(slack.text.length <= SLACK_TEXT_MAX && slack.text.endsWith('…'));
  const section = (slack.blocks[0] as { text: { text: string } }).text.text;
  assert.ok(section.length <= SLACK_SECTION_MAX && section.endsWith('…'));
  const discord = discordPayload(long);
  assert.equal(discord.content.length <= DISCORD_CONTENT_MAX, true);
  assert.ok(discord.content.endsWith('…'));
  assert.ok(!/[\uD800-\uDBFF]…$/.test(discord.content), 'a lone high surrogate before the ellipsis');
  const description = (discord.embeds[0] as { description: string }).description;
  assert.ok(description.length <= DISCORD_DESCRIPTION_MAX);
  assert.ok(msTeamsPayload(long)['text']!.length <= MSTEAMS_TEXT_MAX);
  // Every body stays valid JSON (no broken surrogate becomes U+FFFD on the wire).
  assert.ok(!JSON.stringify(discord).includes('\\ud83d"'));
});

test('node-down names the node', () => {
  assert.equal(
    slackPayload({ event: 'node-down', revision: A, node: 'n2', cluster: 'prod', at }).text,
    'prod: node n2 is down',
  );
});
