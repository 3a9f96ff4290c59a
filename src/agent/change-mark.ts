/**
 * The node's change mark, answered to the operator's long poll (NodeAgent.awaitChange): every
 * change the agent follows (an engine event of a replica, a health verdict, a resync) moves it on,
 * and a waiting call resolves at once. The mark starts with this process's own random prefix, so a
 * restarted agent never answers a mark an operator already holds, and the operator re-reads it.
 */
import { randomBytes } from 'node:crypto';
import type { NodeChangeMark } from '../api/types.js';

export interface ChangeMarks {
  /** Something about the node's replicas changed. */
  bump(): void;
  current(): string;
  /** The mark once it differs from `since`, or the current one after `timeoutMs` (or on close). */
  awaitChange(since: string | null, timeoutMs: number, closed: AbortSignal): Promise<NodeChangeMark>;
}

export function createChangeMarks(): ChangeMarks {
  const prefix = randomBytes(6).toString('hex');
  let count = 0;
  const waiters = new Set<() => void>();
  const current = () => `${prefix}.${count}`;
  return {
    bump() {
      count += 1;
      for (const wake of [...waiters]) wake();
    },
    current,
    awaitChange(since, timeoutMs, closed) {
      if (since !== current() || closed.aborted) return Promise.resolve({ mark: current() });
      return new Promise((resolve) => {
        const wake = () => {
          waiters.delete(wake);
          clearTimeout(timer);
          closed.removeEventListener('abort', wake);
          resolve({ mark: current() });
        };
        const timer = setTimeout(wake, timeoutMs);
        closed.addEventListener('abort', wake, { once: true });
        waiters.add(wake);
      });
    },
  };
}
