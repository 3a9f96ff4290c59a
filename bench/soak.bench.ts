/**
 * npm run soak -- --minutes N [--seed S] [--rate R] [--converge-timeout S] — berth under random
 * faults for N minutes, then judged on what it converged to. Needs root (it starts Docker engines
 * of its own, as the multi-node tests do) and the offline test images. Not part of `npm test`.
 *
 * Three engines, the operator (`berth run --cluster-listen --no-local-node --listen`) and three
 * joined agents, all real processes; a local git repository with one service of several replicas,
 * a published port (the routing mesh) and a health check; a steady request loop through the mesh
 * of every node (R requests a second in all, loopback only, bounded). Then, every few seconds, a
 * fault drawn from a seeded generator (the seed is printed; --seed replays the same sequence):
 * an agent killed (-9) or frozen (SIGSTOP) and back after a few seconds, the operator killed (-9)
 * and restarted on its state dir, an engine lost and back empty, a good commit (another image tag
 * or env value) or a bad one (replicas that fail their health check, a crash-looping image,
 * invalid YAML). After the last fault it waits (bounded) for convergence, then checks (see
 * soak/checks.ts and soak/traffic.ts) and exits 1 if any check fails, naming it.
 *
 * Everything it starts is stopped and removed at the end, also on failure or Ctrl-C.
 */
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { eventually } from '../test/helpers/berth-cli.js';
import { TEST_IMAGES } from '../test/helpers/docker.js';
import { blameProblems, commitRecords, historyFindings, replicaProblems } from './soak/checks.js';
import { SoakCluster } from './soak/cluster.js';
import { FaultInjector, formatAt, seconds, sleep, type CommitLog, type FaultRecord } from './soak/faults.js';
import { seededRandom } from './soak/random.js';
import { describeVariant, goodFiles, type GoodVariant } from './soak/service.js';
import {
  classifyFailures,
  noHealthyWindows,
  startHealthMonitor,
  startRequestLoop,
  type FailedRequest,
} from './soak/traffic.js';

const REPLICAS = 4;

interface SoakOptions {
  minutes: number;
  seed: number;
  rate: number;
  convergeTimeoutS: number;
}

function readOptions(): SoakOptions {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      seed: { type: 'string' },
      rate: { type: 'string', default: '30' },
      'converge-timeout': { type: 'string', default: '180' },
    },
  });
  const number = (name: string, text: string | undefined, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, got "${text}"`);
    }
    return value;
  };
  return {
    minutes: number('minutes', values.minutes, 0.1, 24 * 60),
    seed: values.seed === undefined ? randomInt(2 ** 31) : number('seed', values.seed, 0, 2 ** 32 - 1),
    rate: number('rate', values.rate, 1, 50),
    convergeTimeoutS: number('converge-timeout', values['converge-timeout'], 10, 3600),
  };
}

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.reverse()) {
      await step().catch((error: unknown) => console.error(`soak: cleanup: ${String(error)}`));
    }
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    console.error(`\nsoak: ${signal}: stopping and removing everything it started`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function soak(options: SoakOptions): Promise<boolean> {
  const startedAt = Date.now();
  const print = (line: string): void => console.log(line);
  print(
    `soak: ${options.minutes} min of faults, seed ${options.seed}, ${options.rate} req/s through the mesh`,
  );
  print(`      replay: npm run soak -- --minutes ${options.minutes} --seed ${options.seed}`);

  const cluster = await SoakCluster.start(startedAt, (step) => cleanups.push(step));
  await eventually(
    'three ready nodes',
    async () => (await cluster.status()).nodes.filter((n) => n.status === 'ready').length === 3,
    60_000,
    500,
  );
  const first: GoodVariant = { image: TEST_IMAGES.webV1, greeting: 'g0' };
  const shape = { replicas: REPLICAS, published: cluster.published };
  const revision = await cluster.repo.commit(goodFiles(shape, first), `good: ${describeVariant(first)}`);
  const commits: CommitLog = {
    shape,
    lastGood: { revision, variant: first },
    good: [{ revision, variant: first }],
    bad: [],
    seenVariants: new Set([describeVariant(first)]),
    counter: 0,
  };
  let last: string[] = [];
  await eventually(
    `${REPLICAS} replicas of the first commit, before any fault`,
    async () => (last = await replicaProblems(cluster, commits)).length === 0,
    120_000,
    1000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${last.join('; ')}`);
  });
  print(
    `${formatAt(Date.now() - startedAt)}  ready: 3 nodes, ${REPLICAS} replicas of ${revision.slice(0, 12)}`,
  );

  const bound = options.minutes * 60_000 + options.convergeTimeoutS * 1000 + 180_000;
  const requests = startRequestLoop({
    engines: cluster.engines,
    port: cluster.published,
    perSecond: options.rate,
    maxMs: bound,
  });
  const monitor = startHealthMonitor({ engines: cluster.engines, maxMs: bound });
  const injector = new FaultInjector(cluster, seededRandom(options.seed), commits, startedAt, print);
  await injector.runFor(options.minutes * 60_000);
  const lastFaultEnd = Date.now();
  print(
    `${formatAt(lastFaultEnd - startedAt)}  last fault mended; waiting for convergence (at most ${options.convergeTimeoutS} s)`,
  );

  const converge = async (): Promise<{ ms: number | null; problems: string[] }> => {
    for (;;) {
      await cluster.reviveExited();
      const problems = await replicaProblems(cluster, commits);
      if (problems.length === 0) return { ms: Date.now() - lastFaultEnd, problems };
      if (Date.now() - lastFaultEnd > options.convergeTimeoutS * 1000) return { ms: null, problems };
      await sleep(2000);
    }
  };
  const [converged] = await Promise.all([converge(), injector.settle()]);
  // A last seconds of load on what converged.
  await sleep(2000);
  const traffic = await requests.stop();
  const samples = await monitor.stop();

  return report({
    print,
    startedAt,
    options,
    timeline: injector.timeline,
    converged,
    traffic,
    classified: classifyFailures(traffic.failed, samples, injector.down),
    noHealthy: noHealthyWindows(samples),
    history: await historyFindings(cluster.stateDir),
    blame: await blameProblems(cluster.stateDir, commits),
    records: await commitRecords(cluster.stateDir, commits),
    exits: cluster.unexpectedExits,
    commits,
  });
}

function report(r: {
  print: (line: string) => void;
  startedAt: number;
  options: SoakOptions;
  timeline: FaultRecord[];
  converged: { ms: number | null; problems: string[] };
  traffic: Awaited<ReturnType<ReturnType<typeof startRequestLoop>['stop']>>;
  classified: ReturnType<typeof classifyFailures>;
  noHealthy: ReturnType<typeof noHealthyWindows>;
  history: Awaited<ReturnType<typeof historyFindings>>;
  blame: string[];
  records: string[];
  exits: SoakCluster['unexpectedExits'];
  commits: CommitLog;
}): boolean {
  const { print, startedAt } = r;
  const at = (ms: number): string => formatAt(ms - startedAt);
  const counts = new Map<string, number>();
  for (const f of r.timeline) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  print('');
  print(`faults injected: ${r.timeline.length} (${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')})`);
  for (const f of r.timeline) {
    print(`  ${formatAt(f.startedAt)}  ${f.kind.padEnd(14)} ${f.target.padEnd(12)} ${f.detail}`);
  }
  const { classified, traffic } = r;
  const bodies = [...traffic.bodies].map(([body, n]) => `${body} ${n}`).join(', ');
  print('');
  print(`requests: ${traffic.sent} sent, ${traffic.failed.length} failed (answers: ${bodies || 'none'})`);
  print(`  entered by a node whose agent and engine were down:  ${classified.entryHostDown.length}`);
  print(`  while no replica answered on its own port:           ${classified.noHealthyReplica.length}`);
  for (const w of r.noHealthy) print(`    no replica answered ${at(w.from)} .. ${at(w.to)}`);
  print(`  while a healthy replica existed:                     ${classified.withHealthyReplica.length}`);
  print(
    `    of which entered by a node whose agent was killed or frozen: ${classified.withHealthyReplicaAgentDown.length}`,
  );
  const during = (f: FailedRequest): string => {
    const t = f.sentAt - startedAt;
    const fault = [...r.timeline].reverse().find((x) => x.startedAt <= t);
    return fault ? `${fault.kind} ${fault.target} at ${formatAt(fault.startedAt)}` : 'before any fault';
  };
  for (const f of classified.withHealthyReplica.slice(0, 30)) {
    print(`    ${at(f.sentAt)} via ${f.node}: ${f.error} (last fault: ${during(f)})`);
  }
  if (classified.withHealthyReplica.length > 30)
    print(`    ... ${classified.withHealthyReplica.length - 30} more`);
  print('');
  print(
    r.converged.ms === null
      ? `did not converge within ${r.options.convergeTimeoutS} s after the last fault`
      : `converged ${seconds(r.converged.ms)} after the last fault`,
  );
  const h = r.history;
  print(
    `history: ${h.entries} entries (${[...h.byOutcome].map(([o, n]) => `${o} ${n}`).join(', ')}); ` +
      `${h.repeats.length} later rollouts of the same revision and outcome (repairs)`,
  );
  for (const repeat of h.repeats) print(`  repair: ${repeat}`);
  for (const entry of h.unsuccessful) print(`  ${entry}`);
  print(
    `commits: ${r.commits.good.length} good, ${r.commits.bad.length} bad; the last good ${r.commits.lastGood.revision.slice(0, 12)} (${describeVariant(r.commits.lastGood.variant)})`,
  );
  for (const record of r.records) print(`  ${record}`);

  const checks: [string, string[]][] = [
    [
      'exactly the desired replicas of the last good commit on ready nodes, nothing else',
      r.converged.problems,
    ],
    [
      'no failed request while a healthy replica existed',
      classified.withHealthyReplica.length === 0 ? [] : [`${classified.withHealthyReplica.length} failed`],
    ],
    ['one history entry per rollout', h.duplicates.map((d) => `recorded twice: ${d}`)],
    ['no fault of the infrastructure blamed on a commit, no bad commit taken as good', r.blame],
    [
      'no berth process exited by itself',
      r.exits.map(
        (e) => `${e.who} exited (${e.exit.signal ?? e.exit.code}) at ${formatAt(e.at)}:\n${e.tail}`,
      ),
    ],
  ];
  print('');
  print('checks:');
  for (const [name, problems] of checks) {
    print(`  ${problems.length === 0 ? 'ok  ' : 'FAIL'} ${name}`);
    for (const p of problems) print(`         ${p.replace(/\n/g, '\n         ')}`);
  }
  const failed = checks.filter(([, problems]) => problems.length > 0).length;
  print('');
  print(failed === 0 ? 'soak: passed' : `soak: ${failed} check(s) failed (seed ${r.options.seed})`);
  return failed === 0;
}

let passed = false;
try {
  if (process.getuid?.() !== 0) throw new Error('the soak starts Docker engines of its own: run it as root');
  passed = await soak(readOptions());
} catch (error) {
  console.error(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await cleanup();
}
process.exit(passed ? 0 : 1);
