import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import cron from 'node-cron';
import { keepVolumeLocationsIn } from '../api/volume-locations.js';
import { DEFAULT_CLUSTER_PORT, type BerthPort } from '../core/berth-ports.js';
import { BerthError } from '../core/errors.js';
import type { NodeAgent } from '../api/types.js';
import type { AdminJobControl } from '../cluster/cluster-server.js';
import { openOperatorCluster } from '../cluster/operator-cluster.js';
import { createLogger, type Logger } from '../core/log.js';
import { MeshController } from '../operator/mesh-controller.js';
import { DEFAULT_CREATE_CONCURRENCY, parseCreateConcurrency } from '../operator/node-create-limit.js';
import { parseListenAddress } from '../core/listen-address.js';
import { loadDashboardToken } from '../operator/dashboard-auth.js';
import { dashboardRoutes } from '../operator/dashboard-routes.js';
import { EventBus } from '../operator/event-bus.js';
import { ObservationEvents } from '../operator/observation-events.js';
import { recordListenUrl } from '../operator/listen-record.js';
import { createOperatorServer } from '../operator/http-server.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { NotificationService } from '../operator/notification-service.js';
import { DEFAULT_SCHEDULE, Operator } from '../operator/operator.js';
import { OverviewSource, type NodeControl } from '../operator/overview.js';
import { eventBusNotifier, notifyAll } from '../operator/reconcile-notifiers.js';
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
import { dataPlaneOption, serviceAddressesOption } from './node-data-plane-options.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface RunOptions extends SourceOptions, ClusterOptions, CommitStatusOptions {
  schedule: string;
  listen?: string;
  watch: boolean;
  webhookSecretFile?: string;
  dashboardTokenFile?: string;
  clusterListen?: string;
  clusterAdvertise?: string;
  certExpiry: string;
  localNode: boolean;
  createConcurrency: number;
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
    .option(
      '--listen <addr>',
      'serve the dashboard (/), /healthz, /metrics and the push webhooks (/webhooks/*) on HOST:PORT',
    )
    .option(
      '--dashboard-token-file <file>',
      "the token that signs in to the dashboard's actions (default: made once into STATE_DIR/dashboard-token)",
    )
    .option('--no-watch', 'do not watch a local repository for new commits (poll only)')
    .option(
      '--create-concurrency <n>',
      'replicas a rollout creates and starts at once on one node',
      parseCreateConcurrency,
      DEFAULT_CREATE_CONCURRENCY,
    )
    .option(
      '--webhook-secret-file <file>',
      'shared secret of the push webhooks at /webhooks/{github,gitlab,gitea} (or BERTH_WEBHOOK_SECRET)',
    );
  addSourceOptions(command);
  addClusterOptions(command);
  command.addOption(serviceAddressesOption());
  command.addOption(dataPlaneOption());
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
  // Notifiers are declared in git: the service exists always, and idles while none is.
  const notifications = new NotificationService({ readSecret, log, cluster: options.clusterName });
  const store = openStateStore(options.stateDir);
  // Held for the operator's lifetime; a lock left by a killed operator is taken over.
  const lock = await acquireStateLock(options.stateDir, 'run');
  const source = await openRevisionSource(options, log).catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });
  // Asked before anything is opened: a wrong URL or credential fails the start with nothing left running.
  const head = await source.head().catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });
  const nodes = await openNodes(options, log);
  await store.update((s) => {
    s.source = { repo: repoIdentity(options.repo), path: options.path, branch: options.branch };
  });
  const metrics = new OperatorMetrics();
  // The event stream of `berth events` and of the dashboard.
  const events = new EventBus();
  const observationEvents = new ObservationEvents();
  // The routing mesh: published ports on every node, following replica health.
  const mesh = new MeshController({
    agents: nodes.agents,
    log,
    onObserved: (observed) => {
      for (const event of observationEvents.changes(observed)) events.publish(event.type, { ...event.data });
    },
  });
  const isLocal = !/^https?:\/\//.test(options.repo);
  const operator = new Operator({
    ...{ source, agents: nodes.agents, store, log, readSecret, metrics, mesh },
    berthPorts: berthPortsOf(options),
    createConcurrency: options.createConcurrency,
    onJobFailed: (job) => notifications.jobFailed(job),
    schedule: options.schedule,
    watchRepo: isLocal && options.watch ? options.repo : null,
    onEvent: (event) => {
      log.info(event, event.type);
      events.publish(event.type, { ...event });
    },
    events,
    notifier: notifyAll(statuses, eventBusNotifier(events), notifications),
  });
  nodes.serveJobs({ runNow: (namespace, name) => operator.runJobNow(namespace, name) });
  nodes.onChange((reason) => {
    // `node NAME down|up|drain|active|labels|removed`
    const [, node, what] = /^node (\S+) (\S+)$/.exec(reason) ?? [];
    events.publish(what ? `node-${what}` : 'node-change', node ? { node } : { reason });
    void operator.trigger(reason);
    const revision = operator.lastResult?.targetRevision ?? operator.lastResult?.headRevision;
    if (what === 'down' && node !== undefined && revision !== undefined)
      notifications.nodeDown(node, revision);
  });
  // Drift is repaired when it happens, not on a timer: a replica removed, stopped or dead behind
  // berth's back is a change its node reports (mesh-controller.ts), and it enqueues a reconcile.
  mesh.onReplicaLost(() => operator.triggerObserved('replica lost'));
  const overview = new OverviewSource({
    operator,
    store,
    events,
    source,
    agents: nodes.agents,
    nodes: nodes.control,
    log,
  });
  const server = await serveOperator(options, {
    ...{ operator, metrics, log, webhookSecret, overview, events },
    nodes: nodes.control,
  }).catch(async (error: unknown) => {
    await nodes.close();
    await lock.release();
    throw error;
  });
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
  await notifications.close();
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
  /** Drain and activate; only a registry (--cluster-listen) holds a node's availability. */
  control: NodeControl | null;
  onChange(listener: (reason: string) => void): void;
  /** `berth job run` through the admin API, once the operator exists. */
  serveJobs(jobs: AdminJobControl): void;
  close(): Promise<void>;
}> {
  keepVolumeLocationsIn(options.stateDir);
  const local = options.localNode
    ? await openCluster(options, log, { meshHost: true })
    : new Map<string, NodeAgent>();
  // Node changes (joined, down, drained) trigger a reconcile once the operator exists.
  let onNodeChange: (reason: string) => void = () => undefined;
  let jobs: AdminJobControl | null = null;
  const cluster = options.clusterListen
    ? await openOperatorCluster({
        stateDir: options.stateDir,
        listen: options.clusterListen,
        ...(options.clusterAdvertise ? { advertise: options.clusterAdvertise } : {}),
        local,
        log,
        onChange: (reason) => onNodeChange(reason),
        certExpiry: options.certExpiry,
        jobs: {
          runNow: (namespace, name) =>
            jobs === null
              ? Promise.reject(new BerthError('ERR_INTERNAL', 'the operator is starting; try again shortly'))
              : jobs.runNow(namespace, name),
        },
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
    control: cluster?.nodes ?? null,
    onChange: (listener) => {
      onNodeChange = listener;
    },
    serveJobs: (control) => {
      jobs = control;
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

/** With --listen: the dashboard, /healthz, /metrics and the push webhooks. */
async function serveOperator(
  options: RunOptions,
  args: {
    operator: Operator;
    metrics: OperatorMetrics;
    log: Logger;
    webhookSecret: string | null;
    overview: OverviewSource;
    nodes: NodeControl | null;
    events: EventBus;
  },
): Promise<FastifyInstance | null> {
  if (!options.listen) return null;
  const { operator, metrics, log, webhookSecret, events } = args;
  const server = createOperatorServer({ operator, metrics, events });
  const dashboard = await loadDashboardToken(options.stateDir, options.dashboardTokenFile);
  if (dashboard.created) log.info({ file: dashboard.path }, 'made the dashboard token');
  await server.register(dashboardRoutes, {
    operator,
    overview: args.overview,
    nodes: args.nodes,
    token: dashboard.token,
  });
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
    { address, webhooks: webhookSecret !== null, dashboardToken: dashboard.path },
    'serving /healthz, /metrics and /webhooks/{github,gitlab,gitea}',
  );
  process.stdout.write(`Dashboard: ${address}/ (sign in with the token in ${dashboard.path})\n`);
  return server;
}
