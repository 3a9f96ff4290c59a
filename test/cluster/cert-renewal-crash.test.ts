/**
 * A crash at any step of a certificate renewal leaves the node a working identity. Three agents
 * join one operator; each is told (BERTH_TEST_CRASH_AT, a test hook of the agent) to kill itself
 * with SIGKILL at one step of its first renewal. Each is restarted from its state dir as soon as
 * it died, with a token rotated in between (so a fresh join would be refused), and must connect
 * again with what it had stored.
 *
 * --cert-expiry 60s: the renewal starts once 20 s are left, and the restarted agents of the two
 * early crash points connect with their old certificate within that margin.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { normaliseSerial } from '../../src/cluster/certificates.js';
import { parseIdentityFile } from '../../src/cluster/node-credentials.js';
import type { RenewalStep } from '../../src/cluster/node-certificate-renewal.js';
import {
  eventually,
  runBerth,
  startBerth,
  targetArgs,
  type BerthProcess,
  type ProcessExit,
} from '../helpers/berth-cli.js';
import { requireDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { namespaceManifest } from '../helpers/manifests.js';

const ns = `cc${Date.now().toString(36)}`;
const STEPS: RenewalStep[] = ['renew-requested', 'renew-received', 'renew-stored'];

interface RegistryNode {
  name: string;
  serial: string;
  renewed?: { serial: string };
}
interface RegistryFile {
  nodes: RegistryNode[];
  revoked: { serial: string }[];
}

/** One agent's story: what it joined with, what its crash left, how it came back. */
interface CrashRun {
  node: string;
  agentDir: string;
  joinedSerial: string;
  crash?: ProcessExit;
  /** The serial in node.pem right after the crash. */
  storedAfterCrash?: string;
  /** The operator's record of the node right after the crash. */
  recordedAfterCrash?: RegistryNode | undefined;
  restarted?: BerthProcess;
}

const serialOf = (certificatePem: string): string =>
  normaliseSerial(new X509Certificate(certificatePem).serialNumber);

describe('a crash at any step of a renewal leaves a working identity', () => {
  let repo: TestRepo;
  let dir: string;
  let stateDir: string;
  let operator: BerthProcess | undefined;
  let endpoint: string;
  const first = new Map<RenewalStep, BerthProcess>();
  const runs = new Map<RenewalStep, CrashRun>();

  const storedSerial = async (agentDir: string): Promise<string> =>
    serialOf(
      parseIdentityFile(await readFile(join(agentDir, 'cluster', 'node.pem'), 'utf8'))!.certificatePem,
    );
  const registry = async (): Promise<RegistryFile> =>
    JSON.parse(await readFile(join(stateDir, 'cluster', 'nodes.json'), 'utf8')) as RegistryFile;
  const nodeStatus = async (node: string): Promise<string | undefined> => {
    const list = await runBerth(['node', 'ls', '--state-dir', stateDir, '--format', 'json']);
    assert.equal(list.code, 0, list.stderr);
    return (JSON.parse(list.stdout) as { name: string; status: string }[]).find((n) => n.name === node)
      ?.status;
  };
  const run = (step: RenewalStep): CrashRun => {
    const found = runs.get(step);
    assert.ok(found, `the agent that crashes at ${step}`);
    return found;
  };
  /** What the restarted agent says it started with (its serial), from its JSON log. */
  const startedWith = (agent: BerthProcess): { serial?: string; joined: boolean } => {
    const lines = agent
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; serial?: string });
    return {
      ...(lines.find((l) => l.msg === 'using the node certificate from the state dir') ?? {}),
      joined: lines.some((l) => l.msg === 'joined the cluster'),
    };
  };

  before(async () => {
    await requireDocker();
    dir = await mkdtemp(join(tmpdir(), 'berth-renewal-crash-'));
    stateDir = join(dir, 'state');
    repo = await createTestRepo({ 'ns.yaml': namespaceManifest(ns) });
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, stateDir }),
      ...['--cluster-listen', '127.0.0.1:0', '--no-local-node', '--cert-expiry', '60s'],
    ]);
    assert.ok(operator.join, operator.output());
    endpoint = operator.join.endpoint;
    const token = operator.join.token;
    await Promise.all(
      STEPS.map(async (step) => {
        const node = `${step.replace('renew-', '')}-${ns}`;
        const agentDir = join(dir, node);
        const agent = await startBerth(
          'agent',
          ['--join', endpoint, '--token', token, '--node', node, '--state-dir', agentDir],
          { env: { BERTH_TEST_CRASH_AT: step } },
        );
        first.set(step, agent);
        runs.set(step, { node, agentDir, joinedSerial: await storedSerial(agentDir) });
      }),
    );
    // From now on a join with the printed token is refused: a restarted agent must use its state dir.
    const rotated = await runBerth(['token', '--rotate', '--state-dir', stateDir]);
    assert.equal(rotated.code, 0, rotated.stderr);
  });

  after(async () => {
    await Promise.all([...first.values()].map((agent) => agent.stop('SIGKILL')));
    await Promise.all([...runs.values()].map((r) => r.restarted?.stop() ?? Promise.resolve()));
    await operator?.stop();
    await repo?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each agent dies by SIGKILL at its step and, restarted with a rotated token, connects again', async () => {
    const oldToken = operator!.join!.token;
    await Promise.all(
      STEPS.map(async (step) => {
        const r = run(step);
        r.crash = await first.get(step)!.exited;
        // Read the moment it died, before the restart changes anything.
        r.storedAfterCrash = await storedSerial(r.agentDir);
        r.recordedAfterCrash = (await registry()).nodes.find((n) => n.name === r.node);
        r.restarted = await startBerth(
          'agent',
          ['--join', endpoint, '--token', oldToken, '--node', r.node, '--state-dir', r.agentDir],
          { keep: Infinity },
        );
      }),
    );
    for (const step of STEPS) {
      const r = run(step);
      assert.deepEqual(r.crash, { code: null, signal: 'SIGKILL' }, `${step}: ${first.get(step)!.output()}`);
      assert.equal(startedWith(r.restarted!).joined, false, `${step}: it did not join again`);
      await eventually(`${r.node} ready again`, async () => (await nodeStatus(r.node)) === 'ready');
    }
  });

  for (const step of ['renew-requested', 'renew-received'] as const) {
    test(`${step}: the operator issued the next certificate, the agent kept the old one, which still connects; its next renewal supersedes the unused one`, async () => {
      const r = run(step);
      assert.ok(r.restarted && r.recordedAfterCrash, 'the crash and restart of the test before');
      // The crash left the old identity on disk, and the operator had already issued the next one.
      assert.equal(r.storedAfterCrash, r.joinedSerial);
      assert.equal(r.recordedAfterCrash.serial, r.joinedSerial);
      const unused = r.recordedAfterCrash.renewed?.serial;
      assert.ok(unused !== undefined && unused !== r.joinedSerial, JSON.stringify(r.recordedAfterCrash));
      assert.equal(startedWith(r.restarted).serial, r.joinedSerial, 'restarted with the old certificate');

      // Its certificate is due: it renews at once, stores, and connects with the new one.
      const file = await eventually(
        'the restarted agent renewed and connected with the new certificate',
        async () => {
          const current = await registry();
          const entry = current.nodes.find((n) => n.name === r.node);
          return entry && entry.serial !== r.joinedSerial && entry.renewed === undefined
            ? { current, entry }
            : null;
        },
      );
      assert.equal(file.entry.serial, await storedSerial(r.agentDir));
      const revoked = file.current.revoked.map((x) => x.serial);
      assert.ok(revoked.includes(r.joinedSerial), 'the old certificate is revoked once the new one is used');
      assert.ok(
        revoked.includes(unused),
        'the certificate issued before the crash, never used, is superseded',
      );
      await eventually(
        `${r.node} ready with its renewed certificate`,
        async () => (await nodeStatus(r.node)) === 'ready',
      );
      assert.equal(r.restarted.child.exitCode, null, r.restarted.output());
    });
  }

  test('renew-stored: node.pem holds the new key and certificate; the restarted agent connects with them and the operator revokes the old one', async () => {
    const r = run('renew-stored');
    assert.ok(r.restarted && r.recordedAfterCrash, 'the crash and restart of the test before');
    assert.notEqual(r.storedAfterCrash, r.joinedSerial);
    // Stored but not used: the operator still takes the old one as current and the new one as renewed.
    assert.equal(r.recordedAfterCrash.serial, r.joinedSerial);
    assert.equal(r.recordedAfterCrash.renewed?.serial, r.storedAfterCrash);
    assert.equal(
      startedWith(r.restarted).serial,
      r.storedAfterCrash,
      'restarted with the stored new certificate',
    );

    const file = await registry();
    const entry = file.nodes.find((n) => n.name === r.node);
    assert.equal(entry?.serial, r.storedAfterCrash, 'its connection made the new certificate current');
    assert.equal(entry?.renewed, undefined);
    assert.ok(file.revoked.some((x) => x.serial === r.joinedSerial));
    assert.equal(r.restarted.child.exitCode, null, r.restarted.output());
  });
});
