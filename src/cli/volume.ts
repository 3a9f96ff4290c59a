import { Command, Option } from 'commander';
import type { NodeAgent, NodeSnapshot, ObservedVolume } from '../api/types.js';
import { observeCluster } from '../api/observe-cluster.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { createLogger, type Logger } from '../core/log.js';
import { addClusterOptions, closeCluster, openCluster, type ClusterOptions } from './context.js';
import { alignColumns } from './columns.js';

interface VolumeListOptions extends ClusterOptions {
  format: 'text' | 'json';
}

/** One row of `berth volume ls`; the `--format json` document is a list of these. */
export interface VolumeRow {
  node: string;
  /** Docker volume name. */
  name: string;
  /** `namespace/service` the volume belongs to. */
  service: string;
  volume: string;
  slot: string;
  /** The replica that mounts it now, or null (a retained volume of a removed or scaled-down slot). */
  replica: string | null;
  driver: string;
  /** null where the engine does not say it. */
  sizeBytes: number | null;
  /** Whether the node answered now; a down node's volumes are those it reported last. */
  nodeStatus: NodeSnapshot['status'];
}

export function registerVolumeCommand(program: Command): void {
  const volume = new Command('volume').description('the volumes of berth services');
  const list = new Command('ls')
    .description(
      'list berth volumes: node, the service and slot they belong to, the replica using them, and their size where the engine says it',
    )
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  addClusterOptions(list);
  list.action(async (options: VolumeListOptions) => {
    const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
    const rows = await listVolumes(options, log);
    process.stdout.write(
      options.format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : formatVolumes(rows),
    );
  });
  volume.addCommand(list);
  program.addCommand(volume);
}

/**
 * Agents of this command are asked for sizes (listVolumes walks the volumes). An operator that
 * listens for agents is asked for its snapshots instead, which carry no sizes.
 */
async function listVolumes(options: VolumeListOptions, log: Logger): Promise<VolumeRow[]> {
  const operator = await openAdminClientIfClustered(options.stateDir);
  if (operator) return rowsOf((await operator.observed()).nodes, new Map());
  const agents: Map<string, NodeAgent> = await openCluster(options, log);
  try {
    const observed = await observeCluster(agents, log);
    const sized = new Map<string, ObservedVolume[]>();
    await Promise.all(
      observed.nodes
        .filter((n) => n.status !== 'down')
        .map(async (n) => {
          const agent = agents.get(n.name);
          if (agent) sized.set(n.name, await agent.listVolumes());
        }),
    );
    return rowsOf(observed.nodes, sized);
  } finally {
    await closeCluster(agents);
  }
}

function rowsOf(nodes: NodeSnapshot[], sized: Map<string, ObservedVolume[]>): VolumeRow[] {
  const rows: VolumeRow[] = [];
  for (const node of nodes) {
    for (const v of sized.get(node.name) ?? node.volumes ?? []) {
      const replica = node.replicas.find(
        (r) => r.namespace === v.namespace && r.service === v.service && r.slot === v.slot,
      );
      rows.push({
        node: node.name,
        name: v.name,
        service: `${v.namespace}/${v.service}`,
        volume: v.volume,
        slot: v.slot,
        replica: replica?.name ?? null,
        driver: v.driver,
        sizeBytes: v.sizeBytes,
        nodeStatus: node.status,
      });
    }
  }
  return rows.sort((a, b) => a.service.localeCompare(b.service) || a.name.localeCompare(b.name));
}

function formatVolumes(rows: VolumeRow[]): string {
  if (rows.length === 0) return 'No berth volumes.\n';
  const table = [
    ['NODE', 'SERVICE', 'VOLUME', 'SLOT', 'USED BY', 'DRIVER', 'SIZE', 'NAME'],
    ...rows.map((r) => [
      r.nodeStatus === 'down' ? `${r.node} (down)` : r.node,
      r.service,
      r.volume,
      r.slot,
      r.replica ?? '-',
      r.driver,
      r.sizeBytes === null ? '-' : humanSize(r.sizeBytes),
      r.name,
    ]),
  ];
  return `${alignColumns(table).join('\n')}\n`;
}

/** Bytes as `docker system df` shows them: one decimal, powers of 1024. */
function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes}B` : `${value.toFixed(1)}${units[unit]}`;
}
