/**
 * The mesh host as real processes, without Docker: `berth mesh-host` started from source by an
 * agent's side (mesh-host-client.ts) in a process of its own, serving a published port on
 * 127.0.0.1 in front of loopback HTTP backends. It outlives a killed agent, is adopted by the
 * next one, and stops with a clean agent stop.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { MeshBackend, MeshRoutes } from '../../src/api/types.js';
import { silentLogger } from '../../src/core/log.js';
import {
  connectMeshHost,
  stopMeshHostByPidFile,
  type RemoteNodeMesh,
} from '../../src/mesh/mesh-host-client.js';
import { MESH_HOST_FILES } from '../../src/mesh/mesh-host-protocol.js';
import { berthFromSource, eventually } from '../helpers/berth-cli.js';
import { assertNoneFailed, freePort, getOnce, startLoadLoop } from '../helpers/load-loop.js';
import { getBody, startNamedBackend } from '../helpers/loopback-http.js';

const agentScript = fileURLToPath(new URL('../helpers/mesh-host-agent.ts', import.meta.url));

function table(version: number, published: number, backends: MeshBackend[]): MeshRoutes {
  return {
    version,
    routes: [{ service: 'default/web', published, protocol: 'tcp', appProtocol: 'http', backends }],
  };
}

async function hostPid(stateDir: string): Promise<number> {
  return Number((await readFile(join(stateDir, MESH_HOST_FILES.pid), 'utf8')).trim());
}

/** Whether `pid` runs; a zombie (exited, its parent gone and not yet reaped) does not. */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

async function refused(port: number): Promise<boolean> {
  return getOnce('127.0.0.1', port, 2000).then(
    () => false,
    () => true,
  );
}

/** The agent's side in a process of its own, once it has applied `routes`. */
async function startAgentSide(stateDir: string, routes: MeshRoutes): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', agentScript, stateDir, JSON.stringify(routes)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await eventually(`the agent's side applied its table (${output})`, async () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output}`);
    return output.includes('applied\n');
  });
  return child;
}

describe('the mesh host', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  const children: ChildProcess[] = [];
  const clients: RemoteNodeMesh[] = [];
  let a: MeshBackend;
  let b: MeshBackend;

  const stateDir = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-mesh-host-'));
    dirs.push(dir);
    return dir;
  };
  const client = (dir: string, address = '127.0.0.1'): RemoteNodeMesh => {
    const mesh = connectMeshHost({
      stateDir: dir,
      address,
      serviceAddresses: null,
      launch: berthFromSource(),
      log: silentLogger(),
    });
    clients.push(mesh);
    return mesh;
  };

  before(async () => {
    for (const name of ['a', 'b']) {
      const started = await startNamedBackend(name);
      servers.push(started.server);
      if (name === 'a') a = started.backend;
      else b = started.backend;
    }
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    // Whatever a failed test left running.
    await Promise.all(dirs.map((dir) => stopMeshHostByPidFile(join(dir, MESH_HOST_FILES.pid))));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    for (const server of servers) server.close();
  });

  test('keeps serving its table when the agent is killed (-9); the next agent adopts it', async () => {
    const dir = await stateDir();
    const published = await freePort();
    const agent = await startAgentSide(dir, table(1, published, [a]));
    children.push(agent);
    assert.equal(await getBody(published), 'a');
    const pid = await hostPid(dir);
    assert.notEqual(pid, agent.pid, 'the mesh host is a process of its own');

    const load = startLoadLoop({ host: '127.0.0.1', port: published, perSecond: 50, maxMs: 30_000 });
    try {
      agent.kill('SIGKILL');
      await new Promise((resolve) => agent.once('exit', resolve));
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      const report = await load.stop();
      assertNoneFailed(report);
      assert.ok(report.requests > 20, `only ${report.requests} requests`);
      assert.deepEqual([...report.bodies.keys()], ['a']);
    }
    assert.ok(await running(pid), 'the mesh host outlived its agent');

    // The next agent adopts it: the same process serves the newer table, an older one is ignored.
    const next = client(dir);
    await next.apply(table(2, published, [b]), { drainTimeoutMs: 0 });
    assert.equal(await hostPid(dir), pid);
    assert.equal(await getBody(published), 'b');
    await next.apply(table(1, published, [a]), { drainTimeoutMs: 0 });
    assert.equal(await getBody(published), 'b');
    assert.deepEqual(next.ports(), [published]);

    // A clean agent stop stops it: the port closes, its files go.
    await next.close();
    assert.ok(!(await running(pid)), 'the mesh host stopped with its agent');
    assert.ok(await refused(published));
    await assert.rejects(stat(join(dir, MESH_HOST_FILES.socket)));
    await assert.rejects(stat(join(dir, MESH_HOST_FILES.pid)));
  });

  test('a mesh host that dies under its agent is started again with the last table', async () => {
    const dir = await stateDir();
    const published = await freePort();
    const mesh = client(dir);
    await mesh.apply(table(1, published, [a]), { drainTimeoutMs: 0 });
    const first = await hostPid(dir);
    process.kill(first, 'SIGKILL');
    await eventually('another mesh host serves the last table', async () => {
      const pid = await hostPid(dir).catch(() => first);
      return pid !== first && (await running(pid)) && (await getBody(published).catch(() => '')) === 'a';
    });
    await mesh.close();
  });

  test('a mesh host serving another address is replaced, not adopted', async () => {
    const dir = await stateDir();
    const published = await freePort();
    const old = await startAgentSide(dir, table(1, published, [a]));
    children.push(old);
    const first = await hostPid(dir);
    // A killed agent: no clean stop, the host keeps running.
    old.kill('SIGKILL');
    const address = '127.0.0.3';
    const next = client(dir, address);
    await next.apply(table(2, published, [b]), { drainTimeoutMs: 0 });
    const second = await hostPid(dir);
    assert.notEqual(second, first);
    assert.ok(!(await running(first)), 'the old mesh host was stopped');
    assert.equal((await getOnce(address, published, 5000)).body, 'b');
    assert.ok(await refused(published), 'nothing serves the old address any more');
    await next.close();
  });

  test('a mesh host whose state dir is removed exits by itself', async () => {
    const dir = await stateDir();
    const published = await freePort();
    const agent = await startAgentSide(dir, table(1, published, [a]));
    children.push(agent);
    const pid = await hostPid(dir);
    agent.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    await eventually('the mesh host exited', async () => !(await running(pid)), 30_000);
    assert.ok(await refused(published));
  });
});
