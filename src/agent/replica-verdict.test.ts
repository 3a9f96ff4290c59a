import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LABELS, type ReplicaWaitOutcome } from '../api/types.js';
import { HTTP_CHECK_LABEL, runtimeContainer } from '../../test/agent/runtime-container-fixture.js';
import { judgeReplica, type ReplicaFacts, type WaitTerms } from './replica-verdict.js';

const withCheck = { labels: { ...runtimeContainer().labels, [LABELS.healthcheck]: HTTP_CHECK_LABEL } };
const facts = (overrides: Partial<ReplicaFacts> = {}): ReplicaFacts => ({
  container: runtimeContainer(),
  restarted: false,
  diedSinceStart: false,
  lastExitCode: null,
  probe: null,
  ...overrides,
});

describe('replica verdict', () => {
  // Each row: mode, facts, whether time is up, and the verdict (null: keep waiting).
  const rows: [string, WaitTerms['mode'], ReplicaFacts, boolean, ReplicaWaitOutcome | null][] = [
    ['gone', 'await', facts({ container: null }), false, 'missing'],
    ['running, no check', 'await', facts(), false, 'healthy'],
    [
      'running, check not passed yet',
      'await',
      facts({ container: runtimeContainer(withCheck) }),
      false,
      null,
    ],
    [
      'running, check not passed when time is up',
      'await',
      facts({ container: runtimeContainer(withCheck) }),
      true,
      'timeout',
    ],
    [
      'running, check passed',
      'await',
      facts({ container: runtimeContainer(withCheck), probe: { health: 'healthy', detail: null } }),
      false,
      'healthy',
    ],
    [
      'check failed',
      'await',
      facts({
        container: runtimeContainer(withCheck),
        probe: { health: 'unhealthy', detail: 'GET / answered 500' },
      }),
      false,
      'unhealthy',
    ],
    ['not started yet', 'await', facts({ container: runtimeContainer({ state: 'created' }) }), false, null],
    [
      'not started when time is up',
      'await',
      facts({ container: runtimeContainer({ state: 'created' }) }),
      true,
      'timeout',
    ],
    [
      'exited',
      'await',
      facts({ container: runtimeContainer({ state: 'exited', exitCode: 1 }) }),
      false,
      'exited',
    ],
    ['restarted by the engine', 'await', facts({ restarted: true }), false, 'exited'],
    ['died and came back', 'watch', facts({ diedSinceStart: true }), false, 'exited'],
    ['up during the window', 'watch', facts(), false, null],
    ['up when the window closes', 'watch', facts(), true, 'healthy'],
    [
      'failing its check in the window',
      'watch',
      facts({ container: runtimeContainer(withCheck), probe: { health: 'unhealthy', detail: null } }),
      false,
      'unhealthy',
    ],
  ];
  for (const [what, mode, given, final, expected] of rows) {
    test(`${mode}: ${what} -> ${expected ?? 'no verdict yet'}`, () => {
      const terms: WaitTerms = { name: 'node-1.web.1', nodeName: 'node-1', mode, limitMs: 1000 };
      const verdict = judgeReplica(terms, given, final);
      assert.equal(verdict?.outcome ?? null, expected);
    });
  }

  test('reasons say why', () => {
    const terms: WaitTerms = { name: 'node-1.web.1', nodeName: 'node-1', mode: 'await', limitMs: 1000 };
    assert.equal(
      judgeReplica(terms, facts({ container: null }), false)?.reason,
      'container node-1.web.1 is gone',
    );
    assert.equal(
      judgeReplica(terms, facts({ restarted: true, lastExitCode: 2 }), false)?.reason,
      'container exited and was restarted, exit code 2',
    );
    assert.equal(
      judgeReplica(terms, facts({ container: runtimeContainer(withCheck) }), true)?.reason,
      'not ready within 1000 ms (state running, health starting)',
    );
    assert.equal(
      judgeReplica(
        terms,
        facts({ container: runtimeContainer(withCheck), probe: { health: 'unhealthy', detail: null } }),
        false,
      )?.reason,
      'health check failed',
    );
  });
});
