/**
 * A chatty replica for the bounded-memory tests of `berth logs`: it says `ready`, waits for
 * /tmp/go, writes BURST_LINES lines as fast as it can, then says `burst done`. The test starts a
 * follower, stops reading its output, releases the burst, waits until the engine holds all of it
 * (an event, not a time window), reads again to its end, and compares the processes' peak resident
 * memory (VmHWM) before and after: a bound measured without timing.
 *
 * The processes on the path run with a small V8 heap (HEAP_CAP_ENV): a process that held the
 * burst would die of it, and one that only makes garbage is made to collect it instead of letting
 * its heap grow (V8 would let it grow by hundreds of MiB on this machine before a full collection,
 * which says nothing about what the process holds).
 */
import { readFile } from 'node:fs/promises';

/** 600 000 lines of 100 bytes: 60 MB of text, over 120 MB as lines held in memory. */
export const BURST_LINES = 600_000;

/** The heap of every process on the path: far below what the burst takes as lines. */
export const HEAP_CAP_ENV = { NODE_OPTIONS: '--max-old-space-size=64' };

export const CHATTY_COMMAND = [
  'sh',
  '-c',
  `echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; yes "${'chatty '.repeat(14)}" | head -n ${BURST_LINES}; echo burst done; exec sleep 3600`,
];

/** How much higher a process's peak may go while the burst goes through it (heap cap, young generation, code). */
export const PEAK_GROWTH_CAP_MIB = 96;

/** Peak resident memory of a process so far (VmHWM), in MiB. */
export async function peakMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** The peak of each process, by the names given. */
export async function peaks(pids: Record<string, number>): Promise<Record<string, number>> {
  const entries = await Promise.all(
    Object.entries(pids).map(async ([name, pid]) => [name, await peakMiB(pid)] as const),
  );
  return Object.fromEntries(entries);
}

/** How much each peak grew from `before` to `after`. */
export function peakGrowth(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([name, mib]) => [name, mib - (before[name] ?? 0)]));
}
