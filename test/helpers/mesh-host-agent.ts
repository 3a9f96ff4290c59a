/**
 * The agent's side of a mesh host, without Docker: `node --import tsx mesh-host-agent.ts STATE_DIR
 * TABLE_JSON` adopts (or starts) the mesh host of STATE_DIR on 127.0.0.1, applies the table,
 * prints `applied`, then idles until killed, as an agent between two tables does.
 */
import { silentLogger } from '../../src/core/log.js';
import { connectMeshHost } from '../../src/mesh/mesh-host-client.js';
import type { MeshRoutes } from '../../src/api/types.js';
import { berthFromSource } from './berth-cli.js';

const [stateDir, table] = process.argv.slice(2);
if (stateDir === undefined || table === undefined)
  throw new Error('usage: mesh-host-agent STATE_DIR TABLE_JSON');
const mesh = connectMeshHost({
  stateDir,
  address: '127.0.0.1',
  serviceAddresses: null,
  launch: berthFromSource(),
  log: silentLogger(),
});
await mesh.apply(JSON.parse(table) as MeshRoutes, { drainTimeoutMs: 0 });
process.stdout.write('applied\n');
setInterval(() => undefined, 60_000);
