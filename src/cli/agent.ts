import { hostname } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { createDockerRuntime, resolveDockerSocket } from '../agent/docker-runtime.js';
import { secretsDir } from '../agent/file-store.js';
import { assertStateVisibleToEngine } from '../agent/host-visible-state.js';
import { createLocalAgent } from '../agent/local-agent.js';
import { DEFAULT_AGENT_PORT } from '../agent/protocol.js';
import { BerthError } from '../core/errors.js';
import type { NodeAgent } from '../api/types.js';
import { joinedAdvertiseAddress } from '../cluster/advertise-address.js';
import type { RecordedPlacement } from '../cluster/node-placement.js';
import type { OperatorConnection } from '../cluster/operator-connection.js';
import { createLogger, type Logger } from '../core/log.js';
import { discoveryRange } from '../mesh/service-addresses.js';
import { dataPlaneOption, serviceAddressesOption } from './node-data-plane-options.js';
import type { DataPlaneChoice } from '../mesh/nftables.js';
import { meshHostLaunch } from './mesh-host-launch.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface AgentCommandOptions {
  join?: string;
  listen: string;
  insecureHttp?: boolean;
  token?: string;
  node: string;
  docker?: string;
  /** Default: 127.0.0.1 with --listen; with --join, the local address of the connection to the operator. */
  advertiseAddr?: string;
  label?: Record<string, string>;
  stateDir: string;
  pull: 'missing' | 'never';
  /** A range, or `off`. */
  serviceAddresses: string;
  dataPlane: DataPlaneChoice;
}

function collectLabel(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const separator = value.indexOf('=');
  if (separator <= 0) throw new InvalidArgumentError(`labels are key=value, got "${value}"`);
  return { ...previous, [value.slice(0, separator)]: value.slice(separator + 1) };
}

/** The engine this agent drives, answering, and seeing the agent's state dir where the agent does. */
async function openEngine(
  socketPath: string,
  stateDir: string,
): Promise<ReturnType<typeof createDockerRuntime>> {
  const runtime = createDockerRuntime({ socketPath });
  try {
    await runtime.ping();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new BerthError('ERR_DOCKER_UNAVAILABLE', `${reason}; is dockerd running?`);
  }
  await assertStateVisibleToEngine({
    stateDir,
    secretsDir: secretsDir(stateDir),
    socketPath,
    flag: '--state-dir',
  });
  return runtime;
}

function parsePullPolicy(value: string): 'missing' | 'never' {
  if (value !== 'missing' && value !== 'never') throw new InvalidArgumentError('use "missing" or "never"');
  return value;
}

export function registerAgentCommand(program: Command): void {
  const command = new Command('agent')
    .description(
      'run the node agent: serve this Docker engine to the operator (create, probe and remove replicas) over an authenticated HTTPS API',
    )
    .option(
      '--join <url>',
      'join the operator at URL (as `berth token` prints it) and take its calls over one mutual-TLS connection',
    )
    .option(
      '--listen <addr>',
      'without --join: HOST:PORT to serve the agent API on (HTTPS)',
      `127.0.0.1:${DEFAULT_AGENT_PORT}`,
    )
    .option(
      '--insecure-http',
      'without --join: serve plain HTTP instead of HTTPS (loopback --listen addresses only)',
    )
    .option(
      '--token <token>',
      "with --join: the join token; else this agent's own secret (default: made at first start and kept in --state-dir) (or BERTH_AGENT_TOKEN)",
    )
    .option('--node <name>', 'node name, unique in the cluster', hostname())
    .option('--docker <socket>', 'Docker socket (default: DOCKER_HOST or /var/run/docker.sock)')
    .option(
      '--advertise-addr <ip>',
      'address replicas publish their ports on, and probes reach them at (default: with --join, the local address of the connection to the operator; else 127.0.0.1)',
    )
    .addOption(serviceAddressesOption())
    .addOption(dataPlaneOption())
    .option('--label <key=value>', 'node label for placement constraints (repeatable)', collectLabel)
    .option('--state-dir <dir>', 'agent state: files delivered into containers', join('.berth', 'agent'))
    .option(
      '--pull <policy>',
      'pull images that are missing ("missing") or never pull ("never")',
      parsePullPolicy,
      'missing',
    )
    .action(async (options: AgentCommandOptions) => {
      const given = options.token ?? process.env['BERTH_AGENT_TOKEN'];
      const token = given === '' ? undefined : given;
      if (options.join !== undefined && token === undefined) {
        throw new BerthError(
          'ERR_AGENT_UNAUTHORIZED',
          'berth agent --join needs a token: --token T or BERTH_AGENT_TOKEN',
        );
      }
      // An agent either serves its API (node:http) or joins an operator (WebSocket): it loads only
      // the one it uses, and keeps only that in its memory.
      const api = options.join === undefined ? await import('./agent-api.js') : null;
      const listen = api === null ? null : api.agentListenAddress(options);
      const socketPath = resolveDockerSocket(options.docker);
      const base = createLogger({ name: 'berth-agent' });
      const log = base.child({ node: options.node });
      const address =
        options.join === undefined
          ? (options.advertiseAddr ?? '127.0.0.1')
          : await joinedAdvertiseAddress({ operatorUrl: options.join, explicit: options.advertiseAddr, log });
      const placement: RecordedPlacement = { labels: options.label ?? {}, address };

      const runtime = await openEngine(socketPath, options.stateDir);
      const agent = createLocalAgent({
        runtime,
        nodeName: options.node,
        address: placement.address,
        labels: placement.labels,
        stateDir: options.stateDir,
        // The agent adds the node to its own log lines.
        log: base,
        imagePull: options.pull === 'never' ? 'never' : 'if-missing',
        serviceAddresses: discoveryRange(options.serviceAddresses),
        // The node's published ports and service addresses outlive this process (kill -9, a freeze).
        meshHost: meshHostLaunch(),
        dataPlane: options.dataPlane,
      });
      // The first snapshot subscribes to engine events and resumes probing what already runs.
      const first = await agent.snapshot();
      if (options.join !== undefined && token !== undefined) {
        await runJoinedAgent({
          url: options.join,
          token,
          node: options.node,
          stateDir: options.stateDir,
          placement,
          agent,
          log,
        });
        return;
      }
      if (api === null || listen === null) throw new Error('unreachable: --listen without an address');
      await api.serveAgentApi({
        agent,
        givenSecret: token,
        log,
        listen,
        options,
        socketPath,
        replicas: first.replicas.length,
      });
    });
  program.addCommand(command);
}

/** `berth agent --join`: joins (or reuses its certificate), then serves the operator until a signal or a refusal. */
async function runJoinedAgent(args: {
  url: string;
  token: string;
  node: string;
  stateDir: string;
  placement: RecordedPlacement;
  agent: NodeAgent;
  log: Logger;
}): Promise<void> {
  const { agent, log, placement } = args;
  let connection: OperatorConnection | null = null;
  try {
    const { connectToOperator, joinCluster } = await import('../cluster/operator-connection.js');
    const credentials = await joinCluster(args);
    connection = connectToOperator({
      url: args.url,
      credentials,
      stateDir: args.stateDir,
      agent,
      placement,
      log,
    });
    const signalled = waitForShutdownSignal();
    await Promise.race([connection.ready, connection.refused]);
    process.stdout.write(`berth agent: node ${args.node} joined ${args.url}\n`);
    const signal = await Promise.race([signalled, connection.refused]);
    log.info({ signal }, 'agent shutting down; containers keep running');
  } finally {
    await connection?.close();
    await agent.close();
  }
}
