/**
 * The kernel data plane of a node mesh against this host's real nftables (needs root, as the
 * nftables data plane does): loopback backends on an address of their own, no Docker.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import type { MeshBackend, MeshRoutes } from '../api/types.js';
import { freePort } from '../../test/helpers/load-loop.js';
import { silentLogger } from '../core/log.js';
import { createNodeMesh } from './node-mesh.js';
import { nftTableName } from './nftables-ruleset.js';

// An address of this run's own, so parallel runs and other meshes keep their tables.
const octet = 100 + Math.floor(Math.random() * 100);
const address = `127.0.${octet}.1`;
const backendHost = `127.0.${octet}.2`;

const table = (version: number, published: number, backends: MeshBackend[]): MeshRoutes => ({
  version,
  routes: [{ service: 'ns/web', published, protocol: 'tcp', backends }],
});

function listTable(): string | null {
  try {
    return execFileSync('nft', ['list', 'table', 'ip', nftTableName(address, process.pid)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
}

/** A backend that answers each connection with its name and the client port it sees, then echoes. */
async function startBackend(name: string): Promise<{ server: Server; backend: MeshBackend }> {
  const port = await freePort();
  const server = createServer((socket) => {
    socket.write(`${name} ${socket.remotePort}\n`);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, backendHost, resolve));
  return { server, backend: { id: `n/${name}`, host: backendHost, port } };
}

/** Every client socket still open, destroyed when the suite ends (even on a failed assertion). */
const opened = new Set<Socket>();

/** Connects to the published port and reads the backend's greeting line. */
function open(port: number): Promise<{ socket: Socket; greeting: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port });
    opened.add(socket);
    socket.once('close', () => opened.delete(socket));
    socket.once('error', reject);
    socket.once('data', (chunk: Buffer) => resolve({ socket, greeting: chunk.toString().trim() }));
  });
}

function echo(socket: Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    socket.write(text);
  });
}

describe('node mesh, nftables data plane', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
    for (const s of opened) s.destroy();
    // Nothing of this test stays in the host's rules, even when an assertion failed.
    execFileSync('nft', ['-f', '-'], {
      input: `table ip ${nftTableName(address, process.pid)}\ndelete table ip ${nftTableName(address, process.pid)}\n`,
    });
  });

  test('DNATs a published port in the kernel, drains by conntrack, removes its table on close', async () => {
    const a = await startBackend('a');
    const b = await startBackend('b');
    servers.push(a.server, b.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address, log: silentLogger(), dataPlane: 'nftables' });
    try {
      await mesh.apply(table(1, port, [a.backend, b.backend]), { drainTimeoutMs: 0 });
      assert.equal(mesh.dataPlane(), 'nftables');
      assert.match(listTable() ?? '', new RegExp(`dport ${port} dnat ip to numgen random mod 2`));

      // The backend sees the client's own port: no relay in between, the kernel rewrote the packets.
      const seen = new Set<string>();
      for (let i = 0; i < 20 && seen.size < 2; i++) {
        const { socket, greeting } = await open(port);
        const [name, clientPort] = greeting.split(' ');
        assert.equal(Number(clientPort), socket.localPort);
        seen.add(name ?? '');
        socket.destroy();
      }
      assert.deepEqual([...seen].sort(), ['a', 'b']);

      // Drain: `a` leaves the map; a connection it has stays and keeps working until it closes.
      let held: Socket | null = null;
      while (held === null) {
        const opened = await open(port);
        if (opened.greeting.startsWith('a ')) held = opened.socket;
        else opened.socket.destroy();
      }
      let drained = false;
      const applying = mesh
        .apply(table(2, port, [b.backend]), { drainTimeoutMs: 60_000 })
        .then(() => (drained = true));
      // The new map is in the kernel once the table no longer names `a`.
      while ((listTable() ?? '').includes(`. ${a.backend.port}`)) await new Promise((r) => setImmediate(r));
      for (let i = 0; i < 10; i++) {
        const { socket, greeting } = await open(port);
        socket.destroy();
        assert.ok(greeting.startsWith('b '), greeting);
      }
      assert.equal(await echo(held, 'still here'), 'still here');
      assert.equal(drained, false);
      held.end();
      await applying;
    } finally {
      await mesh.close();
    }
    assert.equal(listTable(), null);
  });

  test('userspace when asked: no table, the balancer relays', async () => {
    const a = await startBackend('a');
    servers.push(a.server);
    const port = await freePort();
    const mesh = createNodeMesh({ address, log: silentLogger(), dataPlane: 'userspace' });
    try {
      await mesh.apply(table(1, port, [a.backend]), { drainTimeoutMs: 0 });
      assert.equal(mesh.dataPlane(), 'userspace');
      assert.equal(listTable(), null);
      const { socket, greeting } = await open(port);
      assert.notEqual(Number(greeting.split(' ')[1]), socket.localPort);
      socket.destroy();
    } finally {
      await mesh.close();
    }
  });
});
