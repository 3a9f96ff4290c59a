// A process that races for the state lock (state-lock-race.test.ts): prints whether it got the
// lock, holds it until its stdin closes, then releases it and exits.
import { acquireStateLock } from '../../src/operator/state-lock.js';

const stateDir = process.argv[2];
if (stateDir === undefined) throw new Error('usage: state-lock-racer STATE_DIR');
let lock;
try {
  lock = await acquireStateLock(stateDir, 'race');
  process.stdout.write(`${JSON.stringify({ pid: process.pid, acquired: true })}\n`);
} catch (error) {
  process.stdout.write(
    `${JSON.stringify({ pid: process.pid, acquired: false, message: (error as Error).message })}\n`,
  );
}
process.stdin.resume();
await new Promise((resolve) => process.stdin.on('end', resolve));
await lock?.release();
