import type { Server } from 'node:net';

/**
 * What a balancer has open to each backend (connections, or requests in HTTP mode), and the drain
 * wait on it: a backend taken out of the table is stopped only once its count is back to zero.
 */
export class InFlight {
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  /** Called when a backend's count drops to zero. */
  private readonly onIdle: (id: string) => void;

  constructor(onIdle: (id: string) => void = () => undefined) {
    this.onIdle = onIdle;
  }

  begin(id: string): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  end(id: string): void {
    const left = (this.counts.get(id) ?? 1) - 1;
    if (left > 0) this.counts.set(id, left);
    else {
      this.counts.delete(id);
      this.onIdle(id);
    }
    for (const wake of this.waiters) wake();
  }

  has(id: string): boolean {
    return this.counts.has(id);
  }

  /** Open to one backend, or to all. */
  count(id?: string): number {
    if (id !== undefined) return this.counts.get(id) ?? 0;
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return total;
  }

  /** Resolves true once nothing is open to `id`, false after `timeoutMs`. */
  drained(id: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const finish = (value: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const check = (): void => {
        if (!this.counts.has(id)) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

/** Listens on host:port (0 picks a free port) and resolves with the port. */
export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}
