/**
 * The nftables data plane of the routing mesh (berth run --data-plane nftables, real engine, needs
 * root): the published port is a kernel DNAT over the healthy replicas, it follows health and
 * rolling updates without a failed request, survives a killed mesh host, and leaves no rule behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { dockerExec, requireDocker, requireTestImages } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { assertNoneFailed, freePort, getOnce, startLoadLoop } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { removeNamespace, replicasOf } from '../operator/cluster-probe.js';
import { nftTableName } from '../../src/mesh/nftables-ruleset.js';

const ns = `kdp${Date.now().toString(36)}`;
const node = `test-${ns}`;

function manifests(image: string, published: number): Record<string, string> {
  return {
    'deploy/all.yaml': manifestFile(
      namespaceManifest(ns),
      webService({
        namespace: ns,
        image,
        replicas: 3,
        ports: [{ target: 8080, published }],
        update: { parallelism: 1, order: 'start-first', monitor: '1s' },
        stopGracePeriod: '2s',
      }),
    ),
  };
}

function nft(args: string[]): string | null {
  try {
    return execFileSync('nft', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

/** berth's tables for 127.0.0.1 on this host, by name. */
function berthTables(): string[] {
  const listing = nft(['list', 'tables', 'ip']) ?? '';
  return [...listing.matchAll(/^table ip (berth_127_0_0_1_p\d+)$/gm)].map((m) => m[1]!);
}

describe('routing mesh, nftables data plane (berth run, real engine)', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  let published: number;
  const tablesBefore = new Set<string>();

  const meshHostPid = async (): Promise<number> =>
    Number((await readFile(join(stateDir, 'agent', 'mesh-host.pid'), 'utf8')).trim());
  /** Where the kernel DNATs the published port to (`address:port`), from the mesh host's table; null without a table. */
  const kernelBackends = async (): Promise<string[] | null> => {
    const listing = nft(['list', 'table', 'ip', nftTableName('127.0.0.1', await meshHostPid())]);
    if (listing === null) return null;
    const rule = new RegExp(
      `tcp dport ${published} dnat ip to numgen random mod \\d+ map \\{([^}]*)\\}`,
    ).exec(listing);
    if (!rule) return [];
    return [...(rule[1] ?? '').matchAll(/([\d.]+) \. (\d+)/g)].map((m) => `${m[1]}:${m[2]}`).sort();
  };
  /** A replica's own address and target port on the engine's bridge: where the kernel must send it. */
  const bridgeTarget = (container: string): string => {
    const address = execFileSync(
      'docker',
      ['inspect', '-f', '{{.NetworkSettings.Networks.bridge.IPAddress}}', container],
      { encoding: 'utf8' },
    ).trim();
    return `${address}:8080`;
  };
  const replicaTargets = async (): Promise<string[]> =>
    (await replicasOf(ns, 'web'))
      .filter((r) => r.state === 'running')
      .map((r) => bridgeTarget(r.name))
      .sort();

  /** route_localnet of the main engine's bridge (docker0). */
  const routeLocalnet = (): string =>
    readFileSync('/proc/sys/net/ipv4/conf/docker0/route_localnet', 'utf8').trim();

  before(async () => {
    await requireDocker();
    await requireTestImages();
    for (const table of berthTables()) tablesBefore.add(table);
    published = await freePort();
    repo = await createTestRepo(manifests('berth-test/web:v1', published));
    stateDir = await mkdtemp(join(tmpdir(), 'berth-kdp-'));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...['--service-addresses', 'off', '--data-plane', 'nftables'],
      ...SCHEDULE_NEVER,
    ]);
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    // The mesh host stops once its state dir is gone, and takes its table with it.
    await rm(stateDir, { recursive: true, force: true });
    await eventually('no nftables table of this test is left', async () =>
      berthTables().every((t) => tablesBefore.has(t)),
    );
  });

  test("the published port is a kernel DNAT over the 3 healthy replicas' bridge addresses", async () => {
    await eventually('3 replicas in the kernel map, at their container addresses', async () => {
      const targets = await replicaTargets();
      return targets.length === 3 && JSON.stringify(await kernelBackends()) === JSON.stringify(targets);
    });
    // Not through docker-proxy: no entry is the node address and a published port.
    assert.ok((await kernelBackends())?.every((t) => !t.startsWith('127.')));
    for (let i = 0; i < 9; i++) {
      const answer = await getOnce('127.0.0.1', published);
      assert.equal(answer.status, 200);
      assert.equal(answer.body, 'v1');
    }
    const log = await readFile(join(stateDir, 'agent', 'mesh-host.log'), 'utf8');
    assert.match(log, /routing mesh data plane: nftables/);
  });

  test('a rolling update under a steady request loop fails no request', async () => {
    const load = startLoadLoop({ host: '127.0.0.1', port: published, perSecond: 20, maxMs: 120_000 });
    const commit = await repo.commit(manifests('berth-test/web:v2', published), 'v2');
    try {
      await eventually(
        'every replica on v2, and only v2 in the kernel map',
        async () => {
          const replicas = await replicasOf(ns, 'web');
          if (replicas.length !== 3 || !replicas.every((r) => r.revision === commit && r.state === 'running'))
            return false;
          return JSON.stringify(await kernelBackends()) === JSON.stringify(await replicaTargets());
        },
        110_000,
      );
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      // Answers of both versions prove the loop spanned the rollout (a count would depend on its speed).
      assert.ok(
        report.bodies.has('v1') && report.bodies.has('v2'),
        `${report.requests} requests: ${JSON.stringify([...report.bodies])}`,
      );
    }
  });

  test('a replica that fails its health check leaves the map, and comes back when healthy', async () => {
    const [victim] = await replicasOf(ns, 'web');
    assert.ok(victim);
    const victimTarget = bridgeTarget(victim.name);
    const removed = await dockerExec(victim.name, ['mv', '/www/index.html', '/www/kept.html']);
    assert.equal(removed.exitCode, 0, removed.output);
    const rest = await eventually('the unhealthy replica is out of the kernel map', async () => {
      const targets = await kernelBackends();
      return targets !== null && targets.length === 2 && !targets.includes(victimTarget) ? targets : null;
    });
    for (let i = 0; i < 20; i++) assert.equal((await getOnce('127.0.0.1', published)).status, 200);
    const restored = await dockerExec(victim.name, ['mv', '/www/kept.html', '/www/index.html']);
    assert.equal(restored.exitCode, 0, restored.output);
    await eventually('3 replicas in the kernel map again', async () => {
      const targets = await kernelBackends();
      return (
        targets?.length === 3 && targets.includes(victimTarget) && rest.every((t) => targets.includes(t))
      );
    });
  });

  test('a killed mesh host: the next one replaces its table and serves the last routes', async () => {
    const killed = await meshHostPid();
    process.kill(killed, 'SIGKILL');
    await eventually('a new mesh host serves the 3 replicas in a table of its own', async () => {
      const pid = await meshHostPid().catch(() => killed);
      if (pid === killed) return false;
      return (await kernelBackends())?.length === 3;
    });
    assert.ok(!berthTables().includes(nftTableName('127.0.0.1', killed)), 'the dead host table is gone');
    assert.equal((await getOnce('127.0.0.1', published)).body, 'v2');
  });

  test('a clean stop removes everything berth added to nftables', async () => {
    assert.equal(routeLocalnet(), '1', 'on while local replicas are DNATed from loopback');
    const pid = await meshHostPid();
    const exit = await operator!.stop('SIGTERM');
    operator = null;
    assert.equal(exit.code, 0);
    await eventually('the mesh host is gone', async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(!berthTables().includes(nftTableName('127.0.0.1', pid)), berthTables().join(', '));
    // Without berth's table (and its guard) the bridge routes no loopback traffic again.
    if (berthTables().length === 0) assert.equal(routeLocalnet(), '0');
  });
});
