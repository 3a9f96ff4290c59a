/**
 * Follows every node's changes by long poll (NodeAgent.awaitChange) instead of reading every node
 * on a timer: one call per node waits, answered the moment the node's replicas change (the agent
 * follows the engine's event stream and its own health probes). A node that does not answer is
 * retried with back-off, and its failure and its return are both changes.
 */
import type { NodeAgent } from '../api/types.js';

/** Each call waits at most this long; the agent answers earlier on a change. */
export const CHANGE_POLL_MS = 25_000;
/** Back-off of a node that does not answer the long poll. */
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 10_000;

export class NodeChangeWatch {
  private readonly agents: () => ReadonlyMap<string, NodeAgent>;
  private readonly onChange: (node: string) => void;
  private readonly watching = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(agents: () => ReadonlyMap<string, NodeAgent>, onChange: (node: string) => void) {
    this.agents = agents;
    this.onChange = onChange;
  }

  /** Starts following the nodes not followed yet (a node joined since); cheap, call it often. */
  follow(): void {
    if (this.stopping.signal.aborted) return;
    for (const name of this.agents().keys()) {
      if (this.watching.has(name)) continue;
      this.watching.set(
        name,
        this.followNode(name).finally(() => this.watching.delete(name)),
      );
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    // The waiting calls end with their own timeout or with the agents' close.
  }

  private async followNode(name: string): Promise<void> {
    let mark: string | null = null;
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      // The agent handle is looked up each time: a node removed from the cluster stops here.
      const agent = this.agents().get(name);
      if (agent === undefined) return;
      try {
        const answer = await agent.awaitChange(mark, { timeoutMs: CHANGE_POLL_MS });
        if (failures > 0 || answer.mark !== mark) this.changed(name);
        mark = answer.mark;
        failures = 0;
      } catch {
        if (failures === 0) this.changed(name);
        failures += 1;
        mark = null;
        await this.pause(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failures - 1)));
      }
    }
  }

  private changed(name: string): void {
    if (!this.stopping.signal.aborted) this.onChange(name);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopping.signal.addEventListener('abort', done, { once: true });
    });
  }
}
