import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_PROTOCOL, agentTooOld, asCompatible } from './agent-protocol.js';
import type { NodeSnapshot } from './types.js';

const snapshot = (overrides: Partial<NodeSnapshot>): NodeSnapshot => ({
  name: 'n1',
  address: '10.0.0.1',
  labels: {},
  capacity: { nanoCpus: 2e9, memoryBytes: 2 ** 30 },
  engineVersion: '20.10',
  status: 'ready',
  images: [],
  replicas: [],
  ...overrides,
});

test('an agent that says no protocol, or an older one, is too old; this protocol or a newer one is not', () => {
  assert.match(agentTooOld({}) ?? '', /an earlier berth, agent protocol 0\) is older than this operator/);
  assert.match(
    agentTooOld({ agent: { version: '0.0.9', protocol: AGENT_PROTOCOL - 1 } }) ?? '',
    /berth 0\.0\.9, agent protocol/,
  );
  assert.equal(agentTooOld({ agent: { version: '0.1.0', protocol: AGENT_PROTOCOL } }), null);
  assert.equal(agentTooOld({ agent: { version: '9.0.0', protocol: AGENT_PROTOCOL + 5 } }), null);
});

test("a too-old agent's node is drained with the reason; a current one and a down one stay as they are", () => {
  const old = asCompatible(snapshot({}));
  assert.equal(old.status, 'drain');
  assert.match(old.incompatible ?? '', /upgraded/);
  const current = snapshot({ agent: { version: '0.1.0', protocol: AGENT_PROTOCOL } });
  assert.deepEqual(asCompatible(current), current);
  const down = snapshot({ status: 'down' });
  assert.equal(asCompatible(down), down);
});

test('what an agent says of itself is reduced to a plain version and an integer protocol', () => {
  const hostile = asCompatible(snapshot({ agent: { version: '1.0\u001b[2J\nforged line', protocol: 1.5 } }));
  assert.deepEqual(hostile.agent, { version: 'unknown', protocol: 0 });
  assert.equal(hostile.status, 'drain');
  assert.ok(
    !(hostile.incompatible ?? '').includes('forged') && !(hostile.incompatible ?? '').includes('\u001b'),
  );
  const plain = asCompatible(snapshot({ agent: { version: '0.2.0-rc.1+b7', protocol: AGENT_PROTOCOL } }));
  assert.deepEqual(plain.agent, { version: '0.2.0-rc.1+b7', protocol: AGENT_PROTOCOL });
});
