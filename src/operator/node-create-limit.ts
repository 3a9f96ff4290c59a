/**
 * How many replicas a rollout creates and starts at once on one node. Services with no order
 * between them roll in parallel; unbounded, a cold start of a hundred services asks one engine
 * for a hundred creates at the same moment, which it serialises on its own locks (and a node's
 * disk and CPU) far less well than a short queue does: measured in `npm run bench:cold`.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';

/**
 * The default: enough to keep an engine busy (it starts a container in tens of milliseconds
 * with most of that waiting on its own locks), few enough that none waits on a hundred others.
 */
export const DEFAULT_CREATE_CONCURRENCY = 8;
export const MAX_CREATE_CONCURRENCY = 256;

/** The `--create-concurrency` value, checked. */
export function parseCreateConcurrency(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > MAX_CREATE_CONCURRENCY) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--create-concurrency "${text}" is not a whole number from 1 to ${MAX_CREATE_CONCURRENCY}`,
    );
  }
  return value;
}

/**
 * The same agents, whose ensureReplica calls wait in one queue per node, at most `limit` at a
 * time. Every other call passes straight through: waits for health, removals and the mesh are
 * not what loads an engine's create path, and must not queue behind it.
 */
export function limitCreatesPerNode(
  agents: ReadonlyMap<string, NodeAgent>,
  limit: number,
): ReadonlyMap<string, NodeAgent> {
  return new Map([...agents].map(([name, agent]) => [name, withCreateLimit(agent, pLimit(limit))]));
}

function withCreateLimit(agent: NodeAgent, queue: LimitFunction): NodeAgent {
  const ensureReplica: NodeAgent['ensureReplica'] = (request) => queue(() => agent.ensureReplica(request));
  // A proxy rather than a copy: agents are classes too (a joined node's), whose methods live on
  // the prototype and use `this`.
  return new Proxy(agent, {
    get(target, property) {
      if (property === 'ensureReplica') return ensureReplica;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
