/**
 * `berth logs [NAMESPACE/]SERVICE`: the output of every replica of a service on every node, in
 * time order, each line led by `SERVICE.SLOT@NODE |` as `docker service logs` does.
 * `berth logs [NAMESPACE/]job/NAME`: the output of every run of a Job (every attempt), each line
 * led by `job/NAME#ATTEMPT@NODE |` (log-targets.ts picks the containers).
 *
 * The containers come from the nodes (a clustered state dir: the operator relays, it knows every
 * joined node; else --agent or the embedded local node). What is already written is merged in
 * time order (mergeInTimeOrder, one line per container in memory); with -f, each running one is
 * then followed from its last printed line and lines are printed as they come, and the nodes are
 * asked again every second so a replica (or run) started later is followed too. Every stream is
 * pulled: a slow terminal slows the agents' readers down instead of filling memory.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { observeCluster } from '../api/observe-cluster.js';
import type { ObservedState, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';
import { MAX_LOG_TAIL } from '../api/agent-calls.js';
import { openAdminClientIfClustered } from '../cluster/admin-client.js';
import { BerthError, asBerthError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { addClusterOptions, closeCluster, openCluster, type ClusterOptions } from './context.js';
import { parseSince } from './history.js';
import { mergeInTimeOrder } from './log-merge.js';
import {
  describeSelector,
  parseLogSelector,
  selectLogTargets,
  targetKey,
  type LogSelector,
  type LogTarget,
} from './log-targets.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface LogsOptions extends ClusterOptions {
  follow?: boolean;
  since?: string;
  tail?: string;
  timestamps?: boolean;
}

/** Where the containers and their lines come from. */
interface ReplicaLogSource {
  observe(): Promise<ObservedState>;
  logs(target: LogTarget, options: ReplicaLogOptions): AsyncIterable<ReplicaLogLine>;
  close(): Promise<void>;
}

/** How often -f asks the nodes for replicas started since. */
const REPLICA_POLL_MS = 1000;

export function registerLogsCommand(program: Command): void {
  const command = new Command('logs')
    .description(
      "a service's output from every replica on every node (or a Job's from every run), in time order, each line led by SERVICE.SLOT@NODE (job/NAME#ATTEMPT@NODE)",
    )
    .argument('<service>', 'NAME, NAMESPACE/NAME, job/NAME or NAMESPACE/job/NAME')
    .option('-f, --follow', 'keep printing lines as they are written, from replicas (runs) started later too')
    .option('--since <when>', 'only lines since a time (ISO 8601) or a while ago (30s, 10m, 2h, 7d)')
    .option('-n, --tail <n>', `only the last N lines of each replica or run (at most ${MAX_LOG_TAIL})`)
    .option('-t, --timestamps', 'show when each line was written');
  addClusterOptions(command);
  command.action(async (service: string, options: LogsOptions) => {
    const onlyNode = command.getOptionValueSource('node') === 'cli' ? options.node : null;
    await printLogs(parseLogSelector(service), options, onlyNode);
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
      logs: (target, logOptions) => operator.logs(target.node, target.name, logOptions),
      close: async () => undefined,
    };
  }
  const agents = await openCluster(options, log);
  return {
    observe: () => observeCluster(agents, log),
    logs: (target, logOptions) => {
      const agent = agents.get(target.node);
      if (!agent) throw new BerthError('ERR_AGENT_UNREACHABLE', `no agent for node ${target.node}`);
      return agent.logs(target.name, logOptions);
    },
    close: () => closeCluster(agents),
  };
}

/** Prints the lines of each container, and knows where the last one printed was. */
interface Printer {
  print(target: LogTarget, line: ReplicaLogLine): Promise<void>;
  /** The newest line printed of each container (by targetKey). */
  lastAt: Map<string, string>;
}

function createPrinter(timestamps: boolean): Printer {
  const lastAt = new Map<string, string>();
  return {
    lastAt,
    async print(target, line) {
      lastAt.set(targetKey(target), line.at);
      const text = `${target.prefix} | ${timestamps ? `${line.at} ` : ''}${line.text}\n`;
      // Backpressure: a slow terminal or pipe holds the stream here, not in memory.
      if (!process.stdout.write(text)) await once(process.stdout, 'drain');
    },
  };
}

/** A container's lines; one that fails (gone, node down) says so on stderr and ends. */
async function* targetLines(
  source: ReplicaLogSource,
  target: LogTarget,
  options: ReplicaLogOptions,
): AsyncGenerator<{ target: LogTarget; line: ReplicaLogLine }> {
  try {
    for await (const line of source.logs(target, options)) yield { target, line };
  } catch (error) {
    const berthError = asBerthError(error);
    // A replica removed meanwhile (a rollout replaced it) has nothing more to say.
    if (berthError.code === 'ERR_CONTAINER_NOT_FOUND') return;
    process.stderr.write(`berth: logs of ${target.name} on ${target.node}: ${berthError.message}\n`);
  }
}

async function printLogs(
  selector: LogSelector,
  options: LogsOptions,
  onlyNode: string | null,
): Promise<void> {
  const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
  const tail = parseTail(options.tail);
  const sinceSeconds = options.since === undefined ? undefined : parseSince(options.since, new Date()) / 1000;
  const source = await openLogSource(options, log);
  const printer = createPrinter(options.timestamps === true);
  try {
    const targets = selectLogTargets(await source.observe(), selector, onlyNode);
    if (targets.length === 0 && !options.follow) {
      const what = selector.kind === 'job' ? 'run' : 'replica';
      process.stderr.write(
        `berth: no ${what} of ${describeSelector(selector)} on ${onlyNode ?? 'any node'}\n`,
      );
      return;
    }
    const backlog: ReplicaLogOptions = {
      ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
      ...(tail === undefined ? {} : { tail }),
    };
    const followFromSeconds = Date.now() / 1000;
    const merged = mergeInTimeOrder(
      targets.map((target) => targetLines(source, target, backlog)),
      (item) => item.line.at,
    );
    for await (const { target, line } of merged) await printer.print(target, line);
    if (options.follow) {
      await followTargets(source, printer, {
        selector,
        onlyNode,
        known: new Set(targets.map(targetKey)),
        followFromSeconds,
      });
    }
  } finally {
    await source.close();
  }
}

interface FollowArgs {
  selector: LogSelector;
  onlyNode: string | null;
  /** Containers whose earlier lines were printed already. */
  known: Set<string>;
  /** When the earlier lines were read: a known replica that printed nothing is followed from here. */
  followFromSeconds: number;
}

/** Seconds since the epoch of a normalised timestamp, the nanoseconds kept as far as a double does. */
function secondsOf(at: string): number {
  return Math.floor(Date.parse(at) / 1000) + Number(`0.${at.slice(20, 29)}`);
}

/**
 * Follows every running container until SIGINT or SIGTERM: a known one from its last printed line
 * (lines at or before it are not printed twice), a new one from its start. A stream that ends (the
 * container stopped, a node blipped) is opened again while its container runs. A Job run not seen
 * before is read once even when it has already ended.
 */
async function followTargets(source: ReplicaLogSource, printer: Printer, args: FollowArgs): Promise<void> {
  const following = new Set<string>();
  const stop = new AbortController();
  void waitForShutdownSignal().then(() => stop.abort());
  const ends = new AbortController();
  const follow = async (target: LogTarget): Promise<void> => {
    const key = targetKey(target);
    const last = printer.lastAt.get(key);
    const sinceSeconds = last ? secondsOf(last) : args.known.has(key) ? args.followFromSeconds : undefined;
    following.add(key);
    try {
      const lines = targetLines(source, target, {
        follow: true,
        ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
      });
      for await (const { line } of lines) {
        if (ends.signal.aborted) return;
        if (last !== undefined && line.at <= last) continue;
        await printer.print(target, line);
      }
    } finally {
      following.delete(key);
      args.known.add(key);
    }
  };
  const streams = new Set<Promise<void>>();
  while (!stop.signal.aborted) {
    try {
      for (const target of selectLogTargets(await source.observe(), args.selector, args.onlyNode)) {
        const key = targetKey(target);
        if (following.has(key) || !(target.running || (target.run && !args.known.has(key)))) continue;
        const stream = follow(target);
        streams.add(stream);
        void stream.finally(() => streams.delete(stream));
      }
    } catch (error) {
      process.stderr.write(`berth: cannot list the replicas: ${asBerthError(error).message}\n`);
    }
    // A timer the signal ends: racing the shutdown promise each second would leave a reaction on it each time.
    await sleep(REPLICA_POLL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
  }
  ends.abort();
}
