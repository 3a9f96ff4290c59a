import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { NodeAgent } from '../api/types.js';
import { keepVolumeLocationsIn } from '../api/volume-locations.js';
import { createAgentClient } from '../agent/client.js';
import { createDockerRuntime, resolveDockerSocket } from '../agent/docker-runtime.js';
import { secretsDir } from '../agent/file-store.js';
import { assertStateVisibleToEngine } from '../agent/host-visible-state.js';
import { createLocalAgent } from '../agent/local-agent.js';
import { BerthError } from '../core/errors.js';
import { withoutCredential } from '../core/url-credential.js';
import { agentTokens } from './agent-tokens.js';
import { DEFAULT_CERT_EXPIRY } from '../cluster/operator-cluster.js';
import { DEFAULT_CLUSTER_PORT } from '../cluster/rpc-protocol.js';
import type { Logger } from '../core/log.js';
import { createGitRevisionSource } from '../operator/git-revision-source.js';
import type { RevisionSource } from '../operator/revision-source.js';
import { StateStore } from '../operator/state-store.js';
import { discoveryRange } from '../mesh/service-addresses.js';
import type { DataPlaneChoice } from '../mesh/nftables.js';
import { openGitSource } from '../source/git-source.js';
import { meshHostLaunch } from './mesh-host-launch.js';

/** Options shared by the commands that read a repository and talk to the cluster. */
export interface SourceOptions {
  repo: string;
  path: string;
  branch: string;
  stateDir: string;
}

export interface ClusterOptions {
  stateDir: string;
  docker?: string;
  agent?: string[];
  agentToken?: string[];
  agentTokenFile?: string;
  node: string;
  advertiseAddr: string;
  /** `berth run` only: a range, or `off`. One-shot commands serve no DNS, so they set none up. */
  serviceAddresses?: string;
  /** `berth run` only: what carries published TCP ports. One-shot commands serve none. */
  dataPlane?: DataPlaneChoice;
}

export const DEFAULT_STATE_DIR = '.berth';
export const DEFAULT_BRANCH = 'main';

/** `repoRequired: false` for commands that can take the repository from elsewhere (a saved plan). */
export function addSourceOptions(command: Command, { repoRequired = true } = {}): Command {
  const repo = 'git repository: a local path or an http(s) URL';
  return (
    repoRequired ? command.requiredOption('--repo <repo>', repo) : command.option('--repo <repo>', repo)
  )
    .option('--path <path>', 'sub-directory of the repository that holds the manifests', '.')
    .option('--branch <branch>', 'branch to follow', DEFAULT_BRANCH);
}

/** The `berth run` options of the cluster endpoint. */
export function addOperatorClusterOptions(command: Command): Command {
  return command
    .option(
      '--cluster-listen <addr>',
      `listen for agents (join and their mutual-TLS connections) on HOST:PORT (port default ${DEFAULT_CLUSTER_PORT})`,
    )
    .option(
      '--cluster-advertise <url>',
      'the URL agents dial, when it differs from --cluster-listen (NAT, DNS name)',
    )
    .option(
      '--cert-expiry <duration>',
      'lifetime of node certificates (agents renew theirs when a third is left)',
      DEFAULT_CERT_EXPIRY,
    )
    .option(
      '--no-local-node',
      'do not run replicas on this host (a control-plane-only operator; needs --cluster-listen)',
    );
}

export function addClusterOptions(command: Command): Command {
  return command
    .option('--state-dir <dir>', 'operator state: history, last good revision, caches', DEFAULT_STATE_DIR)
    .option(
      '--docker <socket>',
      'Docker socket of the embedded local node (default: DOCKER_HOST or /var/run/docker.sock)',
    )
    .option(
      '--agent <url>',
      'use a remote agent at URL (https://HOST:PORT, as `berth agent` prints it) instead of the embedded local node (repeatable)',
      collect,
    )
    .option(
      '--agent-token <token>',
      'the token `berth agent` printed, one per --agent in the same order (repeatable; BERTH_AGENT_TOKEN for a single agent)',
      collect,
    )
    .option(
      '--agent-token-file <file>',
      'the agents\' tokens, one "URL TOKEN" line per agent (or BERTH_AGENT_TOKEN_FILE)',
    )
    .option('--node <name>', 'node name of the embedded local node', 'local')
    .option(
      '--advertise-addr <ip>',
      'address the embedded local node publishes replica ports on',
      '127.0.0.1',
    );
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A local repository path made absolute (URLs unchanged), so the state dir can remember it. */
export function absoluteRepo(repo: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(repo) ? repo : resolve(repo);
}

/**
 * The repository as it may be stored, printed and logged: absolute, and without the credential an
 * http(s) URL may carry (that one is used for the Authorization header only, see openGitSource).
 */
export function repoIdentity(repo: string): string {
  return withoutCredential(absoluteRepo(repo));
}

export async function openRevisionSource(options: SourceOptions, log: Logger): Promise<RevisionSource> {
  const repo = absoluteRepo(options.repo);
  const git = await openGitSource({ repo, cacheDir: join(options.stateDir, 'git-cache'), log });
  return createGitRevisionSource({
    git,
    repo: repoIdentity(repo),
    branch: options.branch,
    path: options.path,
  });
}

export function openStateStore(stateDir: string): StateStore {
  return new StateStore(stateDir);
}

/**
 * The nodes this operator drives: remote agents given with --agent, or else the embedded
 * default, an in-process agent on the local Docker socket. Fails with one clear line when
 * the engine is not reachable.
 */
export async function openCluster(
  options: ClusterOptions,
  log: Logger,
  /** `berth run`: the local node's mesh runs in a mesh host that outlives the operator's process. */
  { meshHost = false }: { meshHost?: boolean } = {},
): Promise<Map<string, NodeAgent>> {
  keepVolumeLocationsIn(options.stateDir);
  const agents = new Map<string, NodeAgent>();
  if (options.agent && options.agent.length > 0) {
    const paired = await agentTokens({
      agents: options.agent,
      tokens: options.agentToken ?? [],
      tokenFile: options.agentTokenFile ?? process.env['BERTH_AGENT_TOKEN_FILE'],
      envToken: process.env['BERTH_AGENT_TOKEN'],
    });
    for (const { url, token } of paired) {
      const probe = createAgentClient({ url, token, nodeName: url });
      const snapshot = await probe.snapshot();
      await probe.close();
      agents.set(snapshot.name, createAgentClient({ url, token, nodeName: snapshot.name }));
    }
    return agents;
  }
  const socketPath = resolveDockerSocket(options.docker);
  const runtime = createDockerRuntime({ socketPath });
  try {
    await runtime.ping();
  } catch (error) {
    // The runtime's own message already names the engine and the cause; add what to check.
    const cause =
      error instanceof BerthError && error.code === 'ERR_DOCKER_UNAVAILABLE'
        ? error.message
        : `cannot reach the Docker engine at ${socketPath} (${error instanceof Error ? error.message : String(error)})`;
    throw new BerthError('ERR_DOCKER_UNAVAILABLE', `${cause}; is dockerd running?`);
  }
  await assertStateVisibleToEngine({
    stateDir: options.stateDir,
    secretsDir: secretsDir(join(options.stateDir, 'agent')),
    socketPath,
    flag: '--state-dir',
  });
  const agent = createLocalAgent({
    runtime,
    nodeName: options.node,
    address: options.advertiseAddr,
    labels: {},
    stateDir: join(options.stateDir, 'agent'),
    // The agent adds the node to its own log lines.
    log,
    // Only a long-running operator serves DNS to the containers of its embedded node.
    serviceAddresses:
      options.serviceAddresses === undefined ? null : discoveryRange(options.serviceAddresses),
    ...(meshHost ? { meshHost: meshHostLaunch() } : {}),
    ...(options.dataPlane ? { dataPlane: options.dataPlane } : {}),
  });
  agents.set(options.node, agent);
  return agents;
}

export async function closeCluster(agents: Map<string, NodeAgent>): Promise<void> {
  await Promise.all([...agents.values()].map((a) => a.close()));
}
