// Runs one state-write scenario as an unprivileged user (root ignores file modes), with the
// fault a chmod that takes the write permission away: prints the observation as JSON.
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { registryScenario, storeScenario, type FileSystemFault } from './state-write-scenarios.js';

const [stateDir, scenario] = process.argv.slice(2);
if (stateDir === undefined) throw new Error('usage: state-write-unprivileged STATE_DIR registry|store');

const unwritable = (paths: { path: string; mode: number }[]): FileSystemFault => ({
  broken: async () => {
    for (const { path, mode } of paths) await chmod(path, mode);
  },
  repaired: async () => {
    for (const { path } of paths) await chmod(path, path.endsWith('.jsonl') ? 0o600 : 0o700);
  },
});

const observation =
  scenario === 'registry'
    ? await registryScenario(stateDir, unwritable([{ path: join(stateDir, 'cluster'), mode: 0o500 }]))
    : await storeScenario(
        stateDir,
        unwritable([
          { path: stateDir, mode: 0o500 },
          { path: join(stateDir, 'history.jsonl'), mode: 0o400 },
        ]),
      );
process.stdout.write(`${JSON.stringify(observation)}\n`);
