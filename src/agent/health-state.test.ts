import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HealthcheckSpec } from '../manifests/types.js';
import {
  applyProbeOutcome,
  EAGER_PROBE_MS,
  initialHealthState,
  probeIntervalMs,
  type HealthState,
  type ProbeOutcome,
} from './health-state.js';

const check: HealthcheckSpec = {
  probe: { type: 'tcp', port: 8080 },
  intervalMs: 1000,
  timeoutMs: 500,
  retries: 3,
  startPeriodMs: 0,
};
const fail: ProbeOutcome = { ok: false, detail: 'connection refused' };
const pass: ProbeOutcome = { ok: true };

/** Feeds outcomes at the given times (ms after start) and returns every state. */
function run(spec: HealthcheckSpec, steps: [number, ProbeOutcome][]): HealthState[] {
  let state = initialHealthState(0);
  return steps.map(([at, outcome]) => (state = applyProbeOutcome(state, outcome, at, spec)));
}

void describe('health state machine', () => {
  void test('a first pass makes the container healthy at once', () => {
    const [first] = run(check, [[100, pass]]);
    assert.equal(first?.health, 'healthy');
    assert.equal(first?.detail, null);
  });

  void test('a pass during the start period counts', () => {
    const [first] = run({ ...check, startPeriodMs: 10_000 }, [[100, pass]]);
    assert.equal(first?.health, 'healthy');
  });

  void test('failures during the start period do not count', () => {
    const states = run(
      { ...check, startPeriodMs: 5000 },
      Array.from({ length: 40 }, (_, i): [number, ProbeOutcome] => [100 * (i + 1), fail]),
    );
    assert.ok(states.every((state) => state.health === 'starting' && state.consecutiveFailures === 0));
    assert.equal(states.at(-1)?.detail, 'connection refused');
  });

  void test('eager failures before the first pass wait out retries x interval before unhealthy', () => {
    // Three quick failures are `retries` failures, but only 300 ms of the 3 s budget.
    const early = run(check, [
      [100, fail],
      [200, fail],
      [300, fail],
    ]);
    assert.equal(early.at(-1)?.health, 'starting');
    const steps = Array.from({ length: 31 }, (_, i): [number, ProbeOutcome] => [100 * (i + 1), fail]);
    const states = run(check, steps);
    assert.equal(states[28]?.health, 'starting'); // at 2.9 s
    assert.equal(states[29]?.health, 'unhealthy'); // at 3.0 s
  });

  void test('the failure budget starts when the start period ends', () => {
    const spec = { ...check, startPeriodMs: 2000 };
    const steps = Array.from({ length: 50 }, (_, i): [number, ProbeOutcome] => [100 * (i + 1), fail]);
    const states = run(spec, steps);
    assert.equal(states[48]?.health, 'starting'); // 4.9 s
    assert.equal(states[49]?.health, 'unhealthy'); // 5.0 s = 2 s start period + 3 x 1 s
  });

  void test('a container picked up long after its start gets a fresh failure budget', () => {
    // Started at 0, an agent resumes probing at 60 s: failures count at once (the start period is
    // long over) but the budget of 3 x 1 s runs from 60 s.
    let state = initialHealthState(0, 60_000);
    for (let at = 60_100; at < 63_000; at += 100) state = applyProbeOutcome(state, fail, at, check);
    assert.equal(state.health, 'starting');
    state = applyProbeOutcome(state, fail, 63_000, check);
    assert.equal(state.health, 'unhealthy');
  });

  void test('after a pass, retries consecutive failures make it unhealthy', () => {
    const states = run(check, [
      [100, pass],
      [1100, fail],
      [2100, fail],
      [3100, fail],
    ]);
    assert.deepEqual(
      states.map((state) => state.health),
      ['healthy', 'healthy', 'healthy', 'unhealthy'],
    );
    assert.equal(states.at(-1)?.consecutiveFailures, 3);
  });

  void test('a pass in between resets the failure count', () => {
    const states = run(check, [
      [100, pass],
      [1100, fail],
      [2100, fail],
      [3100, pass],
      [4100, fail],
      [5100, fail],
    ]);
    assert.equal(states.at(-1)?.health, 'healthy');
    assert.equal(states.at(-1)?.consecutiveFailures, 2);
  });

  void test('an unhealthy container becomes healthy again on a pass', () => {
    const states = run({ ...check, retries: 1 }, [
      [100, pass],
      [1100, fail],
      [2100, pass],
    ]);
    assert.deepEqual(
      states.map((state) => state.health),
      ['healthy', 'unhealthy', 'healthy'],
    );
  });

  void test('probes run eagerly until the first pass, then every interval', () => {
    const starting = initialHealthState(0);
    assert.equal(probeIntervalMs(starting, check), EAGER_PROBE_MS);
    const healthy = applyProbeOutcome(starting, pass, 100, check);
    assert.equal(probeIntervalMs(healthy, check), 1000);
  });
});
