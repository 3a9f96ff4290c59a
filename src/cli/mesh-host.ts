/**
 * `berth mesh-host` (hidden): the data plane of one node's routing mesh and its service discovery,
 * in a process of its own so that it outlives its agent. `berth agent` (and the embedded local
 * node of `berth run`) start it detached or adopt the one that runs (mesh/mesh-host-client.ts);
 * nobody runs it by hand.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { createLogger } from '../core/log.js';
import { MESH_HOST_FILES } from '../mesh/mesh-host-protocol.js';
import { listenMeshHost } from '../mesh/mesh-host-server.js';
import { createNodeMesh } from '../mesh/node-mesh.js';
import { discoveryRange } from '../mesh/service-addresses.js';
import { createServiceDiscovery } from '../mesh/service-discovery.js';
import { DATA_PLANE_CHOICES, type DataPlaneChoice } from '../mesh/nftables.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface MeshHostOptions {
  stateDir: string;
  address: string;
  serviceAddresses: string;
  dataPlane: DataPlaneChoice;
}

export function registerMeshHostCommand(program: Command): void {
  const command = new Command('mesh-host')
    .description("serve a node's routing mesh for its agent (started by `berth agent`)")
    .requiredOption('--state-dir <dir>', "the agent's state dir: socket, pid file")
    .requiredOption('--address <ip>', 'where published ports are served')
    .requiredOption('--service-addresses <cidr>', 'range of service addresses, or "off"')
    .addOption(
      new Option('--data-plane <plane>', 'what carries published TCP ports')
        .choices(DATA_PLANE_CHOICES)
        .default('userspace'),
    )
    .action(runMeshHost);
  program.addCommand(command, { hidden: true });
}

async function runMeshHost(options: MeshHostOptions): Promise<void> {
  // The socket and the files it writes are the agent's alone.
  process.umask(0o077);
  const log = createLogger({ name: 'berth-mesh-host' }).child({ address: options.address });
  const dir = resolve(options.stateDir);
  const serviceAddresses = discoveryRange(options.serviceAddresses);
  const discovery =
    serviceAddresses === null ? null : createServiceDiscovery({ addresses: serviceAddresses, log });
  const mesh = createNodeMesh({ address: options.address, log, discovery, dataPlane: options.dataPlane });
  const server = await listenMeshHost({
    socketPath: join(dir, MESH_HOST_FILES.socket),
    mesh,
    discovery,
    identity: { address: options.address, serviceAddresses, dataPlane: options.dataPlane },
    log,
  });
  const pidFile = join(dir, MESH_HOST_FILES.pid);
  await writeFile(pidFile, `${process.pid}\n`);
  log.info({ pid: process.pid, stateDir: dir }, 'mesh host serving');

  const reason = await Promise.race([
    server.done,
    waitForShutdownSignal().then((signal) => `signal ${signal}`),
  ]);
  log.info({ reason }, 'mesh host stopping: the published ports of this node close');
  await server.close();
  await mesh.close();
  // Only our own: a host started after us (the socket replaced) wrote its pid there.
  if ((await readFile(pidFile, 'utf8').catch(() => '')).trim() === String(process.pid)) {
    await rm(pidFile, { force: true });
  }
  log.info('mesh host stopped');
}
