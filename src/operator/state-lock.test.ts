import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  judgeLock,
  PARTIAL_LOCK_GRACE_MS,
  processStartTime,
  type LockOwner,
  type ProcessProbe,
} from './state-lock.js';

const self: LockOwner = { pid: 100, startTime: '5000', command: 'run' };
/** The processes of the table's world: pid 200 runs since tick 7000, pid 300 is gone. */
const probe = (pid: number): ProcessProbe =>
  pid === 200 ? { running: true, startTime: '7000' } : { running: false, startTime: null };
const record = (owner: Partial<LockOwner>): string => JSON.stringify({ command: 'apply', ...owner });

test('the staleness decision: only a live process that is still the recorded one holds the lock', () => {
  const cases: { name: string; text: string; ageMs?: number; verdict: string }[] = [
    { name: 'live pid, same start time', text: record({ pid: 200, startTime: '7000' }), verdict: 'held' },
    { name: 'live pid, no start time recorded (older berth)', text: record({ pid: 200 }), verdict: 'held' },
    { name: 'dead pid', text: record({ pid: 300, startTime: '7000' }), verdict: 'stale' },
    {
      name: 'pid reused by another process',
      text: record({ pid: 200, startTime: '6999' }),
      verdict: 'stale',
    },
    {
      name: 'this very process (acquired twice)',
      text: record({ pid: 100, startTime: '5000' }),
      verdict: 'held',
    },
    {
      name: 'our pid, but an earlier process',
      text: record({ pid: 100, startTime: '4000' }),
      verdict: 'stale',
    },
    { name: 'empty: being created', text: '', ageMs: 5, verdict: 'being-created' },
    { name: 'half written: being created', text: '{"pid":2', ageMs: 5, verdict: 'being-created' },
    { name: 'no pid yet: being created', text: '{}', ageMs: 5, verdict: 'being-created' },
    {
      name: 'empty long after: its creator died',
      text: '',
      ageMs: PARTIAL_LOCK_GRACE_MS + 1,
      verdict: 'stale',
    },
  ];
  for (const c of cases) {
    const verdict = judgeLock({ text: c.text, ageMs: c.ageMs ?? 60_000, self, probe });
    assert.equal(verdict.kind, c.verdict, c.name);
  }
});

test('the start time of a process is read from /proc/PID/stat and differs between processes', () => {
  const own = processStartTime(process.pid);
  assert.match(own ?? '', /^\d+$/);
  assert.equal(processStartTime(process.pid), own);
  assert.notEqual(processStartTime(1), null);
  assert.notEqual(processStartTime(1), own);
  assert.equal(processStartTime(2 ** 22 + 1), null);
});
