/**
 * `npm test`: every test file, in two lanes that run side by side.
 *
 * The multi-node suites (several engines of their own, started per suite file) spend most of
 * their time waiting on those engines, not on the main engine that every other suite uses; they
 * run one after another in a lane of their own while the rest runs one file at a time in the
 * other. Within a lane, files never overlap, as before. BERTH_TEST_LANES=1 runs everything in
 * one lane (the order of a plain `node --test`), to tell a lane interaction from a real failure.
 *
 * The main lane's TAP is streamed as it comes; the cluster lane's is printed when it ends (two
 * interleaved TAP streams would be unreadable). Exit 1 when either lane fails.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const TEST_ARGS = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=300000'];

/** Suites that start engines of their own (test/helpers/multi-node.ts). */
const isClusterSuite = (file: string): boolean =>
  file.startsWith('test/cluster/') || /^test\/mesh\/multi-node/.test(file);

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
const lanes = process.env.BERTH_TEST_LANES === '1' ? 1 : 2;
const cluster = lanes === 1 ? [] : all.filter(isClusterSuite);
const main = lanes === 1 ? all : all.filter((file) => !isClusterSuite(file));
console.log(`# ${all.length} test files in ${lanes} lane(s): main ${main.length}, cluster ${cluster.length}`);

const started = Date.now();
const [mainLane, clusterLane] = await Promise.all([
  runLane('main', main, { stream: true }),
  runLane('cluster', cluster, { stream: false }),
]);
if (clusterLane.output) {
  console.log('# ---- cluster lane ----');
  process.stdout.write(clusterLane.output);
}
for (const lane of [mainLane, clusterLane]) {
  if (lane.name === 'cluster' && cluster.length === 0) continue;
  console.log(`# lane ${lane.name}: exit ${lane.code} ${JSON.stringify(summary(lane.output))}`);
}
console.log(`# all lanes done in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(mainLane.code !== 0 || clusterLane.code !== 0 ? 1 : 0);
