import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderRegions } from './dashboard-view.js';
import type { Overview } from './overview.js';

const MARKUP = '"><img src=x onerror=alert(1)></td><script>alert(2)</script>';
const REVISION = 'e'.repeat(40);

/** An overview whose every user-written value is markup. */
function hostileOverview(): Overview {
  return {
    generatedAt: '2026-01-01T12:00:00.000Z',
    repository: { repo: MARKUP, path: MARKUP, branch: MARKUP },
    head: REVISION,
    target: REVISION,
    deployed: { revision: REVISION, at: '2026-01-01T10:00:00.000Z' },
    headDiffers: { reason: MARKUP, failedAt: null },
    conditions: [{ type: 'Ready', status: 'True', reason: MARKUP, message: MARKUP, lastTransitionTime: '' }],
    lastReconcile: null,
    lastError: null,
    rollout: null,
    events: [
      { id: 1, at: '2026-01-01T12:00:00.000Z', type: 'rollout-started', data: { message: MARKUP } },
      { id: 2, at: '2026-01-01T12:00:01.000Z', type: MARKUP, data: { [MARKUP]: MARKUP } },
    ],
    jobs: [],
    services: [
      {
        namespace: MARKUP,
        name: MARKUP,
        desired: 1,
        running: 1,
        healthy: 0,
        revisions: [MARKUP],
        nodes: [MARKUP],
        replicas: [
          { name: MARKUP, node: MARKUP, slot: '1', state: MARKUP, health: MARKUP, revision: MARKUP },
        ],
      },
    ],
    nodes: [
      {
        name: MARKUP,
        status: MARKUP,
        availability: 'drain',
        kind: 'joined',
        labels: { [MARKUP]: MARKUP },
        replicas: 1,
      },
    ],
    history: [
      {
        at: '2026-01-01T11:00:00.000Z',
        revision: REVISION,
        author: MARKUP,
        message: MARKUP,
        service: MARKUP,
        change: 'update',
        outcome: 'rolled back',
        reason: MARKUP,
        durationMs: 1,
        started: [],
        removed: [],
      },
    ],
    canDrain: true,
    failed: [{ revision: REVISION, at: '2026-01-01T11:00:00.000Z', reason: MARKUP }],
  };
}

test('every value users write is escaped in the server-rendered regions, signed in or not', () => {
  for (const signedIn of [false, true]) {
    const regions = renderRegions(hostileOverview(), signedIn);
    for (const [id, html] of Object.entries(regions)) {
      assert.doesNotMatch(html, /<img|<script|<\/td><script/i, id);
      assert.doesNotMatch(html, /"><img/, id);
    }
    assert.ok(regions.services.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(regions.history.includes('&lt;script&gt;alert(2)&lt;/script&gt;'));
    // In attributes too: the service's key and the node's button.
    assert.ok(regions.services.includes('data-service="&quot;&gt;&lt;img'));
    assert.equal(regions.nodes.includes('data-node="&quot;&gt;&lt;img'), true);
  }
});

test('signed in, the regions offer the actions; signed out, none', () => {
  const out = renderRegions(hostileOverview(), false);
  const signedIn = renderRegions(hostileOverview(), true);
  assert.equal(out.actions, '');
  assert.doesNotMatch(out.nodes + out.history + out.status, /data-retry|data-availability/);
  assert.match(signedIn.actions, /id="reconcile-now"/);
  assert.match(signedIn.nodes, /data-availability="active"/);
  assert.match(signedIn.history, new RegExp(`data-retry="${REVISION}"`));
  assert.match(signedIn.status, new RegExp(`data-retry="${REVISION}"`));
});

test('rows after the first screen are held back; a namespace wholly after it too', () => {
  const base = hostileOverview();
  const service = base.services[0]!;
  const services = ['a', 'a', 'a', 'b', 'b', 'c'].map((namespace, i) => ({
    ...service,
    namespace,
    name: `s${i}`,
  }));
  const overview = { ...base, services };
  const held = renderRegions(overview, false, { firstScreenRows: 4 }).services;
  const rows = [...held.matchAll(/<tr data-service="([^"]+)"( data-later="")?>/g)];
  assert.deepEqual(
    rows.map((m) => [m[1], m[2] !== undefined]),
    services.map((s, i) => [`${s.namespace}/${s.name}`, i >= 4]),
  );
  // b starts inside the first screen and is shown; c starts after it and is held back whole.
  assert.deepEqual(
    [...held.matchAll(/<div class="namespace"( data-later="")?><h3>(\w)<\/h3>/g)].map((m) => [
      m[2],
      m[1] !== undefined,
    ]),
    [
      ['a', false],
      ['b', false],
      ['c', true],
    ],
  );
  // Without the option (the client's drawing) nothing is held back.
  assert.doesNotMatch(renderRegions(overview, false).services, /data-later/);
});
