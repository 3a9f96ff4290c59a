/**
 * `npm test`: every test file, in three lanes that run side by side.
 *
 * - engine: the suites that drive the machine's Docker engine, one file at a time (they share it).
 * - cluster: the multi-node suites (several engines of their own, started per suite file), which
 *   spend most of their time waiting on those engines, not on the main one.
 * - light: the suites that need no engine at all (every unit test under src/, and the CLI, git,
 *   browser and file-system suites listed below), which only need a CPU.
 *
 * Within a lane, files never overlap, as before. BERTH_TEST_LANES=1 runs everything in one lane
 * (the order of a plain `node --test`), to tell a lane interaction from a real failure.
 *
 * The engine lane's TAP is streamed as it comes; the other lanes' is printed when they end (two
 * interleaved TAP streams would be unreadable). Exit 1 when any lane fails.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const TEST_ARGS = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000'];

/** Suites that start engines of their own (test/helpers/multi-node.ts). */
const isClusterSuite = (file: string): boolean =>
  file.startsWith('test/cluster/') || /^test\/mesh\/multi-node/.test(file);

/**
 * Suites that use no Docker engine: unit tests, and these (a suite that starts using the engine
 * must leave this list, or it would run beside the engine lane's suites).
 */
const ENGINE_FREE = new Set([
  'test/architecture/layering.test.ts',
  'test/compose/import-compose.test.ts',
  'test/dashboard/first-paint.test.ts',
  'test/dashboard/views.test.ts',
  'test/manifests/built-validators.test.ts',
  'test/manifests/hostile-yaml.test.ts',
  'test/manifests/validate.test.ts',
  'test/mesh/mesh-host.test.ts',
  'test/operator/history-cli.test.ts',
  'test/operator/http-limits.test.ts',
  'test/operator/state-failures.test.ts',
  'test/plan/pull-request-plan.test.ts',
  'test/secrets/secret-cli.test.ts',
]);
const isLightSuite = (file: string): boolean =>
  file.startsWith('src/') || file.startsWith('test/source/') || ENGINE_FREE.has(file);

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

interface LaneResult {
  name: string;
  code: number;
  output: string;
}

function runLane(name: string, files: string[], { stream }: { stream: boolean }): Promise<LaneResult> {
  return new Promise((resolve) => {
    if (files.length === 0) return resolve({ name, code: 0, output: '' });
    const child = spawn(process.execPath, [...TEST_ARGS, ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    const take = (sink: NodeJS.WriteStream) => (chunk: Buffer) => {
      chunks.push(chunk);
      if (stream) sink.write(chunk);
    };
    child.stdout.on('data', take(process.stdout));
    child.stderr.on('data', take(process.stderr));
    child.on('close', (code, signal) => {
      resolve({ name, code: code ?? (signal ? 1 : 0), output: Buffer.concat(chunks).toString() });
    });
  });
}

/** The TAP summary counts of one lane (`# tests 12`, `# pass 11`, ...). */
function summary(output: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const match of output.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm))
    counts[match[1]!] = Number(match[2]);
  return counts;
}

// BERTH_TEST_FILES=part narrows the run to the files whose path contains it (development only).
const only = process.env.BERTH_TEST_FILES;
const all = [...testFiles('src'), ...testFiles('test')].filter((file) => !only || file.includes(only)).sort();
const oneLane = process.env.BERTH_TEST_LANES === '1';
const lanes = oneLane
  ? [{ name: 'engine', files: all }]
  : [
      { name: 'engine', files: all.filter((file) => !isClusterSuite(file) && !isLightSuite(file)) },
      { name: 'cluster', files: all.filter(isClusterSuite) },
      { name: 'light', files: all.filter((file) => !isClusterSuite(file) && isLightSuite(file)) },
    ];
console.log(
  `# ${all.length} test files in ${lanes.length} lane(s): ${lanes.map((l) => `${l.name} ${l.files.length}`).join(', ')}`,
);

const started = Date.now();
const results = await Promise.all(
  lanes.map((lane, i) => runLane(lane.name, lane.files, { stream: i === 0 })),
);
for (const result of results.slice(1)) {
  if (!result.output) continue;
  console.log(`# ---- ${result.name} lane ----`);
  process.stdout.write(result.output);
}
for (const [i, result] of results.entries()) {
  if (lanes[i]!.files.length === 0) continue;
  console.log(`# lane ${result.name}: exit ${result.code} ${JSON.stringify(summary(result.output))}`);
}
console.log(`# all lanes done in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(results.some((result) => result.code !== 0) ? 1 : 0);
