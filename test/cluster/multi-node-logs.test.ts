/**
 * `berth logs` through joined agents: two Docker engines, each with a `berth agent --join` over
 * mutual TLS, and an operator without a local node that relays every line (cluster RPC stream from
 * the node, NDJSON to the CLI). A service with replicas on both nodes prints lines of both, each led
 * by replica and node, merged in time order; -f picks up a replica a later commit starts; and a
 * replica writing as fast as it can, read by a consumer that stops reading, goes through the CLI,
 * the operator and the agent, each with a heap far smaller than the burst, and leaves their peak
 * memory (VmHWM) within a bound (see ../helpers/log-burst.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  runBerth,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import {
  BURST_LINES,
  CHATTY_COMMAND,
  HEAP_CAP_ENV,
  PEAK_GROWTH_CAP_MIB,
  peakGrowth,
  peaks,
} from '../helpers/log-burst.js';
import { manifestFile, namespaceManifest, sleeperService } from '../helpers/manifests.js';
import {
  managedOn,
  startEngineAgent,
  startTestEngines,
  type TestEngine,
  type TestEngines,
} from '../helpers/multi-node.js';

const run = promisify(execFile);
const ns = `ml${Date.now().toString(36)}`;
const entry = fileURLToPath(new URL('../helpers/berth-entry.ts', import.meta.url));
const TALK = ['sh', '-c', 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.2; done'];
function manifests(talkReplicas: number): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      sleeperService({
        namespace: ns,
        name: 'talk',
        command: TALK,
        replicas: talkReplicas,
        update: { monitor: '300ms' },
      }),
      sleeperService({ namespace: ns, name: 'chatty', command: CHATTY_COMMAND, replicas: 1 }),
    ),
  };
}

describe('berth logs through joined agents on two engines', () => {
  let cluster: TestEngines;
  let engines: TestEngine[];
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess | undefined;
  const agents = new Map<string, BerthProcess>();
  const children = new Set<ChildProcess>();

  const logs = (...args: string[]) => runBerth(['logs', ...args, '--state-dir', stateDir]);
  const startLogs = (args: string[]) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', entry, 'logs', ...args, '--state-dir', stateDir],
      {
        env: { ...process.env, NO_COLOR: '1', ...HEAP_CAP_ENV },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-1024 * 1024)));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    return { child, stdout: () => stdout, stderr: () => stderr, closed };
  };
  const running = async (service: string) =>
    (await Promise.all(engines.map((engine) => managedOn(engine, ns, service))))
      .flat()
      .filter((replica) => replica.state === 'running');

  before(async () => {
    cluster = await startTestEngines(2, `${ns}n`);
    engines = cluster.engines;
    dir = await mkdtemp(join(tmpdir(), 'berth-mlogs-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({ 'app.yaml': namespaceManifest(ns) });
    operator = await startBerth(
      'run',
      [
        ...targetArgs({ repo: repo.dir, stateDir }),
        ...['--cluster-listen', '127.0.0.1:0', '--no-local-node'],
        ...SCHEDULE_NEVER,
      ],
      { env: HEAP_CAP_ENV },
    );
    assert.ok(operator.join, operator.output());
    for (const engine of engines) {
      agents.set(
        engine.node,
        await startEngineAgent(engine, operator.join, {
          stateDir: join(dir, `agent-${engine.index}`),
          env: HEAP_CAP_ENV,
        }),
      );
    }
    // Services arrive once both nodes have joined, so the two replicas of talk land on both.
    await repo.commit(manifests(2), 'talk and chatty');
    await eventually(
      'talk on both nodes, chatty running',
      async () => {
        const talk = await running('talk');
        return new Set(talk.map((r) => r.node)).size === 2 && (await running('chatty')).length === 1;
      },
      120_000,
    );
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([...agents.values()].map((agent) => agent.stop()));
    await operator?.stop();
    await cluster?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('lines of the replicas on both nodes, led by replica and node, in time order', async () => {
    await eventually('lines of both nodes', async () => {
      const result = await logs(`${ns}/talk`, '--tail', '2');
      return engines.every((engine) => result.stdout.includes(`@${engine.node} |`));
    });
    const result = await logs(`${ns}/talk`, '--timestamps');
    assert.equal(result.code, 0, result.stderr);
    const parsed = result.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const match = /^(\S+)\.(\d+)@(\S+) \| (\S+) line \d+$/.exec(line);
        assert.ok(match, `unexpected line: ${line}`);
        return { service: match[1], node: match[3]!, at: match[4]! };
      });
    assert.ok(parsed.every((line) => line.service === `${ns}/talk`));
    assert.deepEqual(
      [...new Set(parsed.map((line) => line.node))].sort(),
      engines.map((engine) => engine.node).sort(),
    );
    const stamps = parsed.map((line) => line.at);
    assert.deepEqual(stamps, [...stamps].sort(), 'lines are in time order');
  });

  test('-f follows both nodes, and picks up a replica a later commit starts', async () => {
    const follow = startLogs([`${ns}/talk`, '-f', '--tail', '1']);
    await eventually('followed lines of both nodes', async () =>
      engines.every(
        (engine) => (follow.stdout().match(new RegExp(`@${engine.node} \\|`, 'g')) ?? []).length >= 2,
      ),
    );
    await repo.commit(manifests(3), 'a third replica');
    await eventually('lines of the new replica', async () => follow.stdout().includes('talk.3@'), 120_000);
    follow.child.kill('SIGINT');
    assert.equal(await follow.closed, 0, follow.stderr());
  });

  test('a burst read by a consumer that stops reading keeps the peak memory of CLI, operator and agent bounded', async () => {
    const [replica] = await running('chatty');
    assert.ok(replica);
    const engine = engines.find((e) => e.node === replica.node)!;
    const follow = startLogs([`${ns}/chatty`, '-f']);
    await eventually('the CLI follows the replica', async () => follow.stdout().includes('| ready'));
    // From here the consumer reads nothing: the pipe fills, and the CLI must stop reading.
    follow.child.stdout.pause();
    const pids = {
      cli: follow.child.pid!,
      operator: operator!.child.pid!,
      agent: agents.get(engine.node)!.child.pid!,
    };
    const peakBefore = await peaks(pids);
    await run('docker', ['-H', `unix://${engine.socketPath}`, 'exec', replica.name, 'touch', '/tmp/go']);
    await eventually(
      'the whole burst is in the engine',
      async () => {
        const tail = await engine.docker.getContainer(replica.name).logs({ stdout: true, tail: 1 });
        return tail.toString().includes('burst done');
      },
      120_000,
    );
    // Only now does the consumer read again, to the end of the burst.
    follow.child.stdout.resume();
    await eventually(
      'the CLI printed the burst to its end',
      async () => follow.stdout().includes('| burst done'),
      300_000,
    );
    const peakAfter = await peaks(pids);
    const growth = peakGrowth(peakBefore, peakAfter);
    assert.ok(
      Object.values(growth).every((mib) => mib < PEAK_GROWTH_CAP_MIB),
      `peak memory growth (MiB) while ${BURST_LINES} lines went through: ${JSON.stringify(growth)}`,
    );
    assert.equal(follow.child.exitCode, null, follow.stderr());
    assert.equal(operator!.child.exitCode, null, operator!.output());
    assert.equal(agents.get(engine.node)!.child.exitCode, null, agents.get(engine.node)!.output());
    follow.child.kill('SIGINT');
    assert.equal(await follow.closed, 0, follow.stderr());
  });
});
