/**
 * One process of simulated nodes for bench:scale: for each name given, the real agent
 * (createLocalAgent) on an in-memory runtime, joined with the token and served to the operator over
 * the real mutual-TLS connection, as `berth agent --join` does. Prints `ready <node>` per node
 * once connected, and `ready-all` at the end; exits on SIGTERM.
 *
 *   node --import tsx bench/scale/sim-agents.ts URL TOKEN STATE_DIR START_LATENCY_MS NODE...
 */
import { join } from 'node:path';
import { createLocalAgent } from '../../src/agent/local-agent.js';
import type { NodeAgent } from '../../src/api/types.js';
import {
  connectToOperator,
  joinCluster,
  type OperatorConnection,
} from '../../src/cluster/operator-connection.js';
import { silentLogger } from '../../src/core/log.js';
import { createMemoryRuntime } from './memory-runtime.js';

const [url, token, stateDir, latency, ...nodes] = process.argv.slice(2);
if (!url || !token || !stateDir || !latency || nodes.length === 0)
  throw new Error('usage: URL TOKEN STATE_DIR LATENCY NODE...');
const log = silentLogger();
const running: { agent: NodeAgent; connection: OperatorConnection }[] = [];

/** A join the operator cannot answer in time (busy signing for other nodes) is tried again, as systemd restarts an agent. */
async function startNode(node: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await joinNode(node);
    } catch (error) {
      if (attempt >= 10) throw error;
      process.stderr.write(`${node}: ${(error as Error).message}; again\n`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function joinNode(node: string): Promise<void> {
  const dir = join(stateDir!, node);
  const placement = { labels: {}, address: '127.0.0.1' };
  const agent = createLocalAgent({
    runtime: createMemoryRuntime({ startLatencyMs: Number(latency), hostname: node }),
    nodeName: node,
    address: placement.address,
    stateDir: dir,
    log,
  });
  await agent.snapshot();
  const credentials = await joinCluster({ url: url!, token: token!, node, stateDir: dir, placement, log });
  const connection = connectToOperator({ url: url!, credentials, stateDir: dir, agent, placement, log });
  running.push({ agent, connection });
  await connection.ready;
  process.stdout.write(`ready ${node}\n`);
}

process.once('SIGTERM', () => {
  void Promise.allSettled(
    running.map(async (r) => {
      await r.connection.close();
      await r.agent.close();
    }),
  ).then(() => process.exit(0));
});

// Joins a few at a time: each join makes a key pair and a certificate signing request.
const queue = [...nodes];
await Promise.all(
  Array.from({ length: 2 }, async () => {
    for (let node = queue.shift(); node !== undefined; node = queue.shift()) await startNode(node);
  }),
);
process.stdout.write('ready-all\n');
