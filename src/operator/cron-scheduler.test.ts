import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../core/log.js';
import { loadManifests } from '../manifests/load.js';
import type { DesiredState } from '../manifests/types.js';
import { CronScheduler } from './cron-scheduler.js';
import { StateStore } from './state-store.js';

function desiredWithCronJob(): DesiredState {
  const text = `apiVersion: berth/v1
kind: CronJob
metadata: { name: tick }
spec:
  schedule: "* * * * * *"
  jobTemplate: { image: busybox:1.36 }
`;
  const result = loadManifests([{ path: 'c.yaml', content: new TextEncoder().encode(text) }], {
    revision: 'r',
  });
  assert.ok(result.ok, JSON.stringify(result));
  return result.desired;
}

/** A state store whose writes fail while `failing` is set (a full disk, say). */
class FlakyStore extends StateStore {
  failing = true;
  failures = 0;
  override update(...args: Parameters<StateStore['update']>): ReturnType<StateStore['update']> {
    if (this.failing) {
      this.failures += 1;
      return Promise.reject(new Error('ENOSPC: no space left on device'));
    }
    return super.update(...args);
  }
}

void describe('CronScheduler', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cron-scheduler-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('a step that failed is tried again within seconds, not after the idle minute', async () => {
    const store = new FlakyStore(dir);
    const scheduler = new CronScheduler({
      agents: () => new Map(),
      store,
      log: silentLogger(),
      readSecret: null,
      triggerReconcile: () => undefined,
    });
    scheduler.start();
    try {
      scheduler.setDesired(desiredWithCronJob());
      while (store.failures === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      // The fault passes: the next try records the CronJob and, a second later, its first run.
      store.failing = false;
      const deadline = Date.now() + 20_000;
      let runs = 0;
      while (runs === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        runs = (await store.read()).cronJobs?.['default/tick']?.runs.length ?? 0;
      }
      assert.ok(runs > 0, 'a run was recorded after the failed step (the idle poll is 60 s)');
    } finally {
      await scheduler.stop();
    }
  });
});
