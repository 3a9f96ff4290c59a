import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import cron from 'node-cron';
import { DEFAULT_CLUSTER_PORT, type BerthPort } from '../core/berth-ports.js';
import { BerthError } from '../core/errors.js';
import type { NodeAgent } from '../api/types.js';
import { openOperatorCluster } from '../cluster/operator-cluster.js';
import { createLogger, type Logger } from '../core/log.js';
import { MeshController } from '../operator/mesh-controller.js';
import { parseListenAddress } from '../core/listen-address.js';
import { EventBus } from '../operator/event-bus.js';
import { recordListenUrl } from '../operator/listen-record.js';
import { createOperatorServer } from '../operator/http-server.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { DEFAULT_SCHEDULE, Operator } from '../operator/operator.js';
import { configuredBerthPorts } from '../operator/reserved-ports.js';
import { acquireStateLock } from '../operator/state-lock.js';
import { openSecretReader } from '../secrets/secret-reader.js';
import { shortRevision } from '../source/revision.js';
import { webhookRoutes } from '../source/webhooks/webhook-routes.js';
import { readWebhookSecret } from '../source/webhooks/webhook-secret.js';
import {
  repoIdentity,
  addClusterOptions,
  addOperatorClusterOptions,
  addSourceOptions,
  serviceAddressesOption,
  closeCluster,
  openCluster,
  openRevisionSource,
  openStateStore,
  type ClusterOptions,
  type SourceOptions,
} from './context.js';
import {
  addCommitStatusOptions,
  openCommitStatusReporter,
  type CommitStatusOptions,
} from './commit-status-options.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface RunOptions extends SourceOptions, ClusterOptions, CommitStatusOptions {
  schedule: string;
  listen?: string;
  watch: boolean;
  webhookSecretFile?: string;
  clusterListen?: string;
  clusterAdvertise?: string;
  certExpiry: string;
  localNode: boolean;
}

export function registerRunCommand(program: Command): void {
  const command = new Command('run')
    .description(
      'run the operator: follow the branch (cron poll, file watch of a local repository), converge the cluster',
    )
    .option(
      '--schedule <cron>',
      'cron expression for polling the repository (node-cron, seconds field optional)',
      DEFAULT_SCHEDULE,
    )
    .option('--listen <addr>', 'serve /healthz, /metrics and the push webhooks (/webhooks/*) on HOST:PORT')
    .option('--no-watch', 'do not watch a local repository for new commits (poll only)')
    .option(
      '--webhook-secret-file <file>',
      'shared secret of the push webhooks at /webhooks/{github,gitlab,gitea} (or BERTH_WEBHOOK_SECRET)',
    );
  addSourceOptions(command);
  addClusterOptions(command);
  command.addOption(serviceAddressesOption());
  addOperatorClusterOptions(command);
  addCommitStatusOptions(command);
  command.action(runOperator);
  program.addCommand(command);
}

async function runOperator(options: RunOptions): Promise<void> {
  if (!cron.validate(options.schedule)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--schedule "${options.schedule}" is not a valid cron expression`,
    );
  }
  const log = createLogger();
  const webhookSecret = await readWebhookSecret(options.webhookSecretFile);
  const readSecret = await openSecretReader();
  const statuses = await openCommitStatusReporter(options, log);
  const store = openStateStore(options.stateDir);
  // Held for the operator's lifetime; a lock left by a killed operator is taken over.
  const lock = await acquireStateLock(options.stateDir, 'run');
  const source = await openRevisionSource(options, log);
  const nodes = await openNodes(options, log);
  await store.update((s) => {
    s.source = { repo: repoIdentity(options.repo), path: options.path, branch: options.branch };
  });
  const metrics = new OperatorMetrics();
  // The routing mesh: published ports on every node, following replica health.
  const mesh = new MeshController({ agents: nodes.agents, log });
  const isLocal = !/^https?:\/\//.test(options.repo);
  const events = new EventBus();
  const operator = new Operator({
    ...{ source, agents: nodes.agents, store, log, readSecret, metrics, mesh },
    berthPorts: berthPortsOf(options),
    schedule: options.schedule,
    watchRepo: isLocal && options.watch ? options.repo : null,
    onEvent: (event) => {
      log.info(event, event.type);
      events.publish(event.type, { ...event });
    },
    events,
    ...(statuses === null ? {} : { notifier: statuses }),
  });
  nodes.onChange((reason) => {
    // `node NAME down|up|drain|active|labels|removed`
    const [, node, what] = /^node (\S+) (\S+)$/.exec(reason) ?? [];
    events.publish(what ? `node-${what}` : 'node-change', node ? { node } : { reason });
    void operator.trigger(reason);
  });
  const server = await serveOperator(options, { operator, metrics, log, webhookSecret, events });
  const head = await source.head();
  log.info(
    {
      source: source.description,
      head: shortRevision(head),
      nodes: [...nodes.agents().keys()],
      schedule: options.schedule,
    },
    'operator started',
  );
  await operator.start();
  mesh.start();

  const signal = await waitForShutdownSignal();
  log.info({ signal }, 'shutting down: finishing the current step');
  await operator.stop();
  await statuses?.close();
  await mesh.stop();
  await server?.close();
  await nodes.close();
  await lock.release();
  log.info('stopped');
}

/** The local node and, with --cluster-listen, the joined ones; node changes trigger a reconcile. */
async function openNodes(
  options: RunOptions,
  log: Logger,
): Promise<{
  agents: () => ReadonlyMap<string, NodeAgent>;
  onChange(listener: (reason: string) => void): void;
  close(): Promise<void>;
}> {
  const local = options.localNode ? await openCluster(options, log) : new Map<string, NodeAgent>();
  // Node changes (joined, down, drained) trigger a reconcile once the operator exists.
  let onNodeChange: (reason: string) => void = () => undefined;
  const cluster = options.clusterListen
    ? await openOperatorCluster({
        stateDir: options.stateDir,
        listen: options.clusterListen,
        ...(options.clusterAdvertise ? { advertise: options.clusterAdvertise } : {}),
        local,
        log,
        onChange: (reason) => onNodeChange(reason),
        certExpiry: options.certExpiry,
      })
    : null;
  if (!cluster && local.size === 0) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      '--no-local-node needs --cluster-listen: there would be no node at all',
    );
  }
  if (cluster)
    process.stdout.write(`To add a node to this cluster, run on it:\n    ${cluster.joinCommand}\n`);
  return {
    agents: () => cluster?.agents() ?? local,
    onChange: (listener) => {
      onNodeChange = listener;
    },
    close: async () => {
      await cluster?.close();
      await closeCluster(local);
    },
  };
}

/** The ports this operator's flags make berth listen on: no Service may publish them. */
function berthPortsOf(options: RunOptions): BerthPort[] {
  return configuredBerthPorts({
    listen: options.listen === undefined ? null : parseListenAddress(options.listen, { option: '--listen' }),
    clusterListen:
      options.clusterListen === undefined
        ? null
        : parseListenAddress(options.clusterListen, {
            option: '--cluster-listen',
            defaultPort: DEFAULT_CLUSTER_PORT,
          }),
    agentUrls: options.agent ?? [],
  });
}

/** With --listen: /healthz, /metrics and the push webhooks. */
async function serveOperator(
  options: RunOptions,
  args: {
    operator: Operator;
    metrics: OperatorMetrics;
    log: Logger;
    webhookSecret: string | null;
    events: EventBus;
  },
): Promise<FastifyInstance | null> {
  if (!options.listen) return null;
  const { operator, metrics, log, webhookSecret, events } = args;
  const server = createOperatorServer({ operator, metrics, events });
  await server.register(webhookRoutes, {
    secret: webhookSecret,
    branch: options.branch,
    log,
    metrics,
    onPush: (provider) => void operator.trigger(`webhook:${provider}`),
  });
  const address = await server.listen(parseListenAddress(options.listen, { option: '--listen' }));
  // Where `berth events` finds this operator.
  await recordListenUrl(options.stateDir, address);
  log.info(
    { address, webhooks: webhookSecret !== null },
    'serving /healthz, /metrics and /webhooks/{github,gitlab,gitea}',
  );
  return server;
}
