/**
 * `berth agent --listen`: the agent API served to an operator that dials it. HTTPS with the
 * agent's self-signed certificate and its own secret (both kept in the state dir), printed
 * together as the token the operator needs; plain HTTP only on loopback, with --insecure-http.
 */
import { formatAgentToken } from '../agent/agent-token.js';
import { loadOrCreateApiSecret, loadOrCreateTlsIdentity } from '../agent/api-credentials.js';
import { createAgentServer } from '../agent/server.js';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { isLoopbackHost, parseListenAddress, type ListenAddress } from '../core/listen-address.js';
import type { Logger } from '../core/log.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

export interface AgentApiOptions {
  listen: string;
  insecureHttp?: boolean;
  node: string;
  stateDir: string;
  advertiseAddr?: string;
}

/** The address to serve on; refused before anything starts when it would put the token on a network in plain text. */
export function agentListenAddress(options: AgentApiOptions): ListenAddress {
  const listen = parseListenAddress(options.listen, { option: '--listen' });
  if (options.insecureHttp === true && !isLoopbackHost(listen.host)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--insecure-http serves the agent API and its token in plain text, so only on a loopback address (127.0.0.1, ::1), not on ${options.listen}: drop --insecure-http to serve HTTPS`,
    );
  }
  return listen;
}

/** Serves the agent API until a signal; closes `agent` on the way out. */
export async function serveAgentApi(args: {
  agent: NodeAgent;
  /** --token or BERTH_AGENT_TOKEN; without one the agent uses (or makes) the secret in its state dir. */
  givenSecret: string | undefined;
  log: Logger;
  listen: ListenAddress;
  options: AgentApiOptions;
  socketPath: string;
  replicas: number;
}): Promise<void> {
  const { agent, log, listen, options } = args;
  let server: ReturnType<typeof createAgentServer>;
  let address: string;
  let operatorToken: string;
  try {
    const { secret, source } = await loadOrCreateApiSecret(options.stateDir, args.givenSecret);
    const identity =
      options.insecureHttp === true ? null : await loadOrCreateTlsIdentity(options.stateDir, options.node);
    if (identity !== null) {
      log.info({ fingerprint: identity.fingerprint, created: identity.created }, 'agent API certificate');
    }
    log.info({ source }, 'agent API secret');
    operatorToken = formatAgentToken({ fingerprint: identity?.fingerprint ?? null, secret });
    server = createAgentServer({
      agent,
      token: secret,
      log,
      ...(identity === null ? {} : { tls: identity }),
    });
    address = await listenOn(server, listen, options.listen);
  } catch (error) {
    await agent.close();
    throw error;
  }
  log.info(
    {
      address,
      docker: args.socketPath,
      advertise: options.advertiseAddr ?? '127.0.0.1',
      replicas: args.replicas,
    },
    'agent serving',
  );
  // The serving line comes last: whoever waits for it has the token line too.
  process.stdout.write(
    `To drive this node, give the operator (berth run, apply, plan, ...):\n` +
      `    --agent ${operatorUrl(address, listen, options.advertiseAddr ?? '127.0.0.1')} --agent-token ${operatorToken}\n` +
      `berth agent: node ${options.node} serving on ${address}\n`,
  );

  const signal = await waitForShutdownSignal();
  log.info({ signal }, 'agent shutting down; containers keep running');
  await server.close();
  await agent.close();
  log.info('agent stopped');
}

async function listenOn(
  server: ReturnType<typeof createAgentServer>,
  listen: ListenAddress,
  given: string,
): Promise<string> {
  try {
    return await server.listen(listen);
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot listen on ${given}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** The URL to dial: the listen address, or the advertise address when the agent listens on every one. */
function operatorUrl(address: string, listen: ListenAddress, advertiseAddr: string): string {
  const url = new URL(address);
  if (listen.host === '0.0.0.0' || listen.host === '::') {
    url.hostname = advertiseAddr.includes(':') ? `[${advertiseAddr}]` : advertiseAddr;
  }
  return url.origin;
}
