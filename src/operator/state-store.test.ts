import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAX_PLAN_CHARS, MAX_REVISION_PLANS, StateStore, type HistoryEntry } from './state-store.js';

const entry = (n: number): HistoryEntry => ({
  at: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(),
  revision: `r${n}`,
  author: 'A <a@example.org>',
  message: `commit ${n}`,
  service: 'default/web',
  change: 'update',
  outcome: 'succeeded',
  reason: null,
  durationMs: 1000 + n,
  started: [{ name: `web-${n}`, node: 'n1' }],
  removed: [],
});

test('the audit log survives a new store (a restart), skips a torn line, and keeps the newest entries past its bound', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-history-'));
  try {
    const store = new StateStore(dir, { historyRetention: 5 });
    for (let n = 1; n <= 10; n += 1) await store.appendHistory([entry(n)]);
    // A crash mid-append leaves half a line; the entries around it are intact.
    await appendFile(join(dir, 'history.jsonl'), '{"at":"2026-01-01T00:');
    const restarted = new StateStore(dir, { historyRetention: 5 });
    assert.deepEqual(
      (await restarted.readHistory()).map((e) => e.revision),
      ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10'],
    );
    // Past twice the retention, the log is compacted to the newest `retention` entries.
    await restarted.appendHistory([entry(11)]);
    const kept = await new StateStore(dir).readHistory();
    assert.deepEqual(
      kept.map((e) => e.revision),
      ['r7', 'r8', 'r9', 'r10', 'r11'],
    );
    assert.deepEqual(kept[4], entry(11));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('one revision cannot grow the state: the newest 100 failed revisions are kept, long texts are clipped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-bounds-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new StateStore(dir);
  const huge = 'x'.repeat(1024 * 1024);
  for (let n = 0; n < 150; n += 1) {
    await store.update((s) => {
      s.failed[`rev${n}`] = { at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), reason: huge };
    });
  }
  const state = await store.read();
  const kept = Object.keys(state.failed);
  assert.equal(kept.length, 100);
  assert.ok(kept.includes('rev149') && !kept.includes('rev49'), 'the newest failures are the ones kept');
  assert.ok(Object.values(state.failed).every((f) => f.reason.length <= 4096));

  await store.appendHistory([{ ...entry(1), message: huge, author: huge, reason: huge }]);
  const [written] = await store.readHistory();
  assert.ok(written!.message!.startsWith('xxx') && written!.message!.length <= 1024);
  assert.ok(written!.author!.length <= 256);
  assert.ok(written!.reason!.length <= 4096);
});

test('plans kept per revision: the newest 20, each clipped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-plans-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new StateStore(dir);
  const huge = 'p'.repeat(100_000);
  for (let n = 0; n < 30; n += 1) {
    await store.update((s) => {
      const at = new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
      s.plans = { ...s.plans, [`rev${n}`]: { at, text: huge } };
    });
  }
  const plans = (await store.read()).plans ?? {};
  assert.equal(Object.keys(plans).length, MAX_REVISION_PLANS);
  assert.ok(plans['rev29'] && !plans['rev9'], 'the newest plans are the ones kept');
  assert.ok(Object.values(plans).every((p) => p.text.length === MAX_PLAN_CHARS && p.text.endsWith('…')));
});
