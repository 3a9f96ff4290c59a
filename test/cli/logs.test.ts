/**
 * `berth logs` against real replicas on two nodes (two `berth agent`s over HTTPS, each a node of
 * its own on the test engine): lines of every replica, prefixed and in time order; --tail and
 * --since bound them; -f follows a replica a later commit starts; a burst followed by a reader
 * that stops reading keeps the CLI's and the agents' peak memory bounded (backpressure).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { eventually, runBerth, startBerth, type BerthProcess } from '../helpers/berth-cli.js';
import { dockerCli, dockerExec, requireTestImages } from '../helpers/docker.js';
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
import { removeNamespace, replicasOf } from '../operator/cluster-probe.js';

const ns = `logs${Date.now().toString(36)}`;
const entry = fileURLToPath(new URL('../helpers/berth-entry.ts', import.meta.url));
const TALK = ['sh', '-c', 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.2; done'];
function manifests(talkReplicas: number): Record<string, string> {
  return {
    'app.yaml': manifestFile(
      namespaceManifest(ns),
      sleeperService({ namespace: ns, name: 'talk', command: TALK, replicas: talkReplicas }),
      sleeperService({ namespace: ns, name: 'chatty', command: CHATTY_COMMAND, replicas: 1 }),
    ),
  };
}

describe('berth logs', () => {
  let repo: TestRepo;
  let dir: string;
  const agents: BerthProcess[] = [];
  let target: string[];
  const children = new Set<ChildProcess>();

  const logs = (...args: string[]) =>
    runBerth(['logs', ...args, ...target], { env: { BERTH_AGENT_TOKEN: '' } });
  /** `berth logs ARGS` running on; its stdout is read only when `read`. */
  const startLogs = (args: string[], read: boolean) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'logs', ...args, ...target], {
      env: { ...process.env, NO_COLOR: '1', BERTH_AGENT_TOKEN: '', ...HEAP_CAP_ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    if (read)
      child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-1024 * 1024)));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    return { child, stdout: () => stdout, stderr: () => stderr, closed };
  };

  before(async () => {
    await requireTestImages();
    dir = await mkdtemp(join(tmpdir(), 'berth-logs-'));
    repo = await createTestRepo(manifests(2));
    for (const node of ['a', 'b']) {
      const agent = await startBerth(
        'agent',
        ['--listen', '127.0.0.1:0', '--node', `${ns}-${node}`, '--state-dir', join(dir, `agent-${node}`)],
        { env: { BERTH_AGENT_TOKEN: '', ...HEAP_CAP_ENV } },
      );
      agents.push(agent);
      assert.ok(agent.url && agent.agentToken, agent.output());
    }
    target = [
      '--state-dir',
      join(dir, 'state'),
      ...agents.flatMap((agent) => ['--agent', agent.url!, '--agent-token', agent.agentToken!]),
    ];
    const applied = await runBerth(['apply', '--repo', repo.dir, ...target], {
      env: { BERTH_AGENT_TOKEN: '' },
    });
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const agent of agents) await agent.stop();
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('prints the lines of the replicas on both nodes, prefixed, in time order', async () => {
    // Both replicas have written a few lines.
    await eventually('lines of both replicas', async () => {
      const result = await logs(`${ns}/talk`, '--tail', '3');
      return result.stdout.includes(`@${ns}-a |`) && result.stdout.includes(`@${ns}-b |`);
    });
    const result = await logs(`${ns}/talk`, '--timestamps');
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    const parsed = lines.map((line) => {
      const match = /^(\S+)\.(\d+)@(\S+) \| (\S+) line \d+$/.exec(line);
      assert.ok(match, `unexpected line: ${line}`);
      return { service: match[1], node: match[3]!, at: match[4]! };
    });
    assert.ok(parsed.every((line) => line.service === `${ns}/talk`));
    assert.deepEqual([...new Set(parsed.map((line) => line.node))].sort(), [`${ns}-a`, `${ns}-b`]);
    const stamps = parsed.map((line) => line.at);
    assert.deepEqual(stamps, [...stamps].sort(), 'lines are in time order');
  });

  test('--tail and --since bound what is printed; --node picks one node', async () => {
    const tail = await logs(`${ns}/talk`, '--tail', '2');
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout.trim().split('\n').length, 4, tail.stdout);

    const onlyA = await logs(`${ns}/talk`, '--tail', '2', '--node', `${ns}-a`);
    const linesA = onlyA.stdout.trim().split('\n');
    assert.equal(linesA.length, 2, onlyA.stdout + onlyA.stderr);
    assert.ok(
      linesA.every((line) => line.includes(`@${ns}-a |`)),
      onlyA.stdout,
    );

    // Nine fraction digits, as the lines' timestamps have, so the two compare as text.
    const since = new Date().toISOString().replace('Z', '000000Z');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const recent = await logs(`${ns}/talk`, '--since', since, '--timestamps');
    const stamps = recent.stdout
      .trim()
      .split('\n')
      .map((line) => / \| (\S+) /.exec(line)?.[1] ?? '');
    assert.ok(stamps.length > 0, recent.stdout + recent.stderr);
    assert.ok(
      stamps.every((at) => at >= since),
      `lines before ${since}: ${recent.stdout}`,
    );
  });

  test('-f follows, and picks up a replica a later commit starts', async () => {
    const follow = startLogs([`${ns}/talk`, '-f', '--tail', '1'], true);
    await eventually('followed lines of both nodes', async () => {
      const out = follow.stdout();
      return /talk\.1@\S+ \| line \d+\n[\s\S]*talk\.1@/.test(out) && out.includes('talk.2@');
    });
    await repo.commit(manifests(3), 'a third replica');
    const applied = await runBerth(['apply', '--repo', repo.dir, ...target], {
      env: { BERTH_AGENT_TOKEN: '' },
    });
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    await eventually('lines of the new replica', async () => follow.stdout().includes('talk.3@'));
    follow.child.kill('SIGINT');
    assert.equal(await follow.closed, 0, follow.stderr());
  });

  test('a burst read by a consumer that stops reading keeps the peak memory of the CLI and the agent bounded', async () => {
    const [replica] = await replicasOf(ns, 'chatty');
    assert.ok(replica);
    const follow = startLogs([`${ns}/chatty`, '-f'], true);
    await eventually('the CLI follows the replica', async () => follow.stdout().includes('| ready'));
    // From here the consumer reads nothing: the pipe fills, and the CLI must stop reading.
    follow.child.stdout.pause();
    const pids = {
      cli: follow.child.pid!,
      ...Object.fromEntries(agents.map((a, i) => [`agent${i}`, a.child.pid!])),
    };
    const peakBefore = await peaks(pids);
    const go = await dockerExec(replica.name, ['touch', '/tmp/go']);
    assert.equal(go.exitCode, 0, go.output);
    await eventually(
      'the whole burst is in the engine',
      async () => (await dockerCli(['logs', '--tail', '1', replica.name])).includes('burst done'),
      120_000,
    );
    // Only now does the consumer read again, to the end of the burst.
    follow.child.stdout.resume();
    await eventually(
      'the CLI printed the burst to its end',
      async () => follow.stdout().includes('| burst done'),
      300_000,
    );
    const growth = peakGrowth(peakBefore, await peaks(pids));
    assert.ok(
      Object.values(growth).every((mib) => mib < PEAK_GROWTH_CAP_MIB),
      `peak memory growth (MiB) while ${BURST_LINES} lines went through: ${JSON.stringify(growth)}`,
    );
    for (const agent of agents) assert.equal(agent.child.exitCode, null, agent.output());
    follow.child.kill('SIGINT');
    assert.equal(await follow.closed, 0, follow.stderr());
  });
});
