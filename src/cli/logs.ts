/**
 * `berth logs [NAMESPACE/]SERVICE`: the output of every replica of a service on every node, in
 * time order, each line led by `SERVICE.SLOT@NODE |` as `docker service logs` does.
 *
 * The replicas come from the nodes (a clustered state dir: the operator relays, it knows every
 * joined node; else --agent or the embedded local node). What is already written is merged in
 * time order (mergeInTimeOrder, one line per replica in memory); with -f, each running replica is
 * then followed from its last printed line and lines are printed as they come, and the nodes are
 * asked again every second so a replica started later (a rollout) is followed too. Every stream is
 * pulled: a slow terminal slows the agents' readers down instead of filling memory.
 */
import { once } from 'node:events';
import { Command } from 'commander';
import { observeCluster } from '../api/observe-cluster.js';
import type { ObservedReplica, ObservedState, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';
import { MAX_LOG_TAIL } from '../api/agent-calls.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { BerthError, asBerthError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { DEFAULT_NAMESPACE } from '../manifests/defaults.js';
import { addClusterOptions, closeCluster, openCluster, type ClusterOptions } from './context.js';
import { parseSince } from './history.js';
import { mergeInTimeOrder } from './log-merge.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface LogsOptions extends ClusterOptions {
  follow?: boolean;
  since?: string;
  tail?: string;
  timestamps?: boolean;
}

/** Where the replicas and their lines come from. */
interface ReplicaLogSource {
  observe(): Promise<ObservedState>;
  logs(replica: ObservedReplica, options: ReplicaLogOptions): AsyncIterable<ReplicaLogLine>;
  close(): Promise<void>;
}

/** How often -f asks the nodes for replicas started since. */
const REPLICA_POLL_MS = 1000;

export function registerLogsCommand(program: Command): void {
  const command = new Command('logs')
    .description(
      "a service's output from every replica on every node, in time order, each line led by SERVICE.SLOT@NODE",
    )
    .argument('<service>', 'NAME or NAMESPACE/NAME')
    .option('-f, --follow', 'keep printing lines as they are written, from replicas started later too')
    .option('--since <when>', 'only lines since a time (ISO 8601) or a while ago (30s, 10m, 2h, 7d)')
    .option('-n, --tail <n>', `only the last N lines of each replica (at most ${MAX_LOG_TAIL})`)
    .option('-t, --timestamps', 'show when each line was written');
  addClusterOptions(command);
  command.action(async (service: string, options: LogsOptions) => {
    const onlyNode = command.getOptionValueSource('node') === 'cli' ? options.node : null;
    await printServiceLogs(service, options, onlyNode);
    // Streams still open to the nodes end with the process once -f was stopped.
    if (options.follow) process.stdout.write('', () => process.exit(0));
  });
  program.addCommand(command);
}

function parseTail(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const tail = Number(text);
  if (!Number.isInteger(tail) || tail < 0 || tail > MAX_LOG_TAIL) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--tail wants a whole number from 0 to ${MAX_LOG_TAIL}, got "${text}"`,
    );
  }
  return tail;
}

async function openLogSource(options: LogsOptions, log: Logger): Promise<ReplicaLogSource> {
  const operator = await openAdminClientIfClustered(options.stateDir);
  if (operator) {
    return {
      observe: () => operator.observed(),
      logs: (replica, logOptions) => operator.logs(replica.node, replica.name, logOptions),
      close: async () => undefined,
    };
  }
  const agents = await openCluster(options, log);
  return {
    observe: () => observeCluster(agents, log),
    logs: (replica, logOptions) => {
      const agent = agents.get(replica.node);
      if (!agent) throw new BerthError('ERR_AGENT_UNREACHABLE', `no agent for node ${replica.node}`);
      return agent.logs(replica.name, logOptions);
    },
    close: () => closeCluster(agents),
  };
}

/** What the lines of one replica are printed with, and where the last one printed was. */
interface Printer {
  prefix(replica: ObservedReplica): string;
  print(replica: ObservedReplica, line: ReplicaLogLine): Promise<void>;
  /** The newest line printed of each replica (by node and name). */
  lastAt: Map<string, string>;
}

const replicaKey = (replica: ObservedReplica) => `${replica.node}/${replica.name}`;

function createPrinter(timestamps: boolean): Printer {
  const lastAt = new Map<string, string>();
  const prefix = (replica: ObservedReplica): string => {
    const namespace = replica.namespace === DEFAULT_NAMESPACE ? '' : `${replica.namespace}/`;
    return `${namespace}${replica.service}.${replica.slot}@${replica.node}`;
  };
  return {
    prefix,
    lastAt,
    async print(replica, line) {
      lastAt.set(replicaKey(replica), line.at);
      const text = `${prefix(replica)} | ${timestamps ? `${line.at} ` : ''}${line.text}\n`;
      // Backpressure: a slow terminal or pipe holds the stream here, not in memory.
      if (!process.stdout.write(text)) await once(process.stdout, 'drain');
    },
  };
}

function replicasOf(observed: ObservedState, service: string, onlyNode: string | null): ObservedReplica[] {
  const [namespace, name] = service.includes('/') ? service.split('/', 2) : [DEFAULT_NAMESPACE, service];
  return observed.nodes
    .filter((node) => onlyNode === null || node.name === onlyNode)
    .flatMap((node) => node.replicas)
    .filter((replica) => replica.namespace === namespace && replica.service === name);
}

/** A replica's lines; a replica that fails (gone, node down) says so on stderr and ends. */
async function* replicaLines(
  source: ReplicaLogSource,
  replica: ObservedReplica,
  options: ReplicaLogOptions,
): AsyncGenerator<{ replica: ObservedReplica; line: ReplicaLogLine }> {
  try {
    for await (const line of source.logs(replica, options)) yield { replica, line };
  } catch (error) {
    const berthError = asBerthError(error);
    // A replica removed meanwhile (a rollout replaced it) has nothing more to say.
    if (berthError.code === 'ERR_CONTAINER_NOT_FOUND') return;
    process.stderr.write(`berth: logs of ${replica.name} on ${replica.node}: ${berthError.message}\n`);
  }
}

async function printServiceLogs(
  service: string,
  options: LogsOptions,
  onlyNode: string | null,
): Promise<void> {
  const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
  const tail = parseTail(options.tail);
  const sinceSeconds = options.since === undefined ? undefined : parseSince(options.since, new Date()) / 1000;
  const source = await openLogSource(options, log);
  const printer = createPrinter(options.timestamps === true);
  try {
    const replicas = replicasOf(await source.observe(), service, onlyNode);
    if (replicas.length === 0 && !options.follow) {
      process.stderr.write(`berth: no replica of ${service} on ${onlyNode ?? 'any node'}\n`);
      return;
    }
    const backlog: ReplicaLogOptions = {
      ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
      ...(tail === undefined ? {} : { tail }),
    };
    const followFromSeconds = Date.now() / 1000;
    const merged = mergeInTimeOrder(
      replicas.map((replica) => replicaLines(source, replica, backlog)),
      (item) => item.line.at,
    );
    for await (const { replica, line } of merged) await printer.print(replica, line);
    if (options.follow) {
      await followReplicas(source, printer, {
        service,
        onlyNode,
        known: new Set(replicas.map(replicaKey)),
        followFromSeconds,
      });
    }
  } finally {
    await source.close();
  }
}

interface FollowArgs {
  service: string;
  onlyNode: string | null;
  /** Replicas whose earlier lines were printed already. */
  known: Set<string>;
  /** When the earlier lines were read: a known replica that printed nothing is followed from here. */
  followFromSeconds: number;
}

/** Seconds since the epoch of a normalised timestamp, the nanoseconds kept as far as a double does. */
function secondsOf(at: string): number {
  return Math.floor(Date.parse(at) / 1000) + Number(`0.${at.slice(20, 29)}`);
}

/**
 * Follows every running replica until SIGINT or SIGTERM: a known one from its last printed line
 * (lines at or before it are not printed twice), a new one from its start. A stream that ends (the
 * container stopped, a node blipped) is opened again while its replica runs.
 */
async function followReplicas(source: ReplicaLogSource, printer: Printer, args: FollowArgs): Promise<void> {
  const following = new Set<string>();
  let stopped = false;
  const stop = waitForShutdownSignal().then(() => {
    stopped = true;
  });
  const ends = new AbortController();
  const follow = async (replica: ObservedReplica): Promise<void> => {
    const key = replicaKey(replica);
    const last = printer.lastAt.get(key);
    const sinceSeconds = last ? secondsOf(last) : args.known.has(key) ? args.followFromSeconds : undefined;
    following.add(key);
    try {
      const lines = replicaLines(source, replica, {
        follow: true,
        ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
      });
      for await (const { line } of lines) {
        if (ends.signal.aborted) return;
        if (last !== undefined && line.at <= last) continue;
        await printer.print(replica, line);
      }
    } finally {
      following.delete(key);
      args.known.add(key);
    }
  };
  const streams = new Set<Promise<void>>();
  while (!stopped) {
    try {
      for (const replica of replicasOf(await source.observe(), args.service, args.onlyNode)) {
        if (following.has(replicaKey(replica)) || replica.state !== 'running') continue;
        const stream = follow(replica);
        streams.add(stream);
        void stream.finally(() => streams.delete(stream));
      }
    } catch (error) {
      process.stderr.write(`berth: cannot list the replicas: ${asBerthError(error).message}\n`);
    }
    await Promise.race([stop, new Promise((resolve) => setTimeout(resolve, REPLICA_POLL_MS))]);
  }
  ends.abort();
}
