import type { MeshBackend } from '../api/types.js';

/** How long a backend that failed a connection or a request is tried only after the others. */
const EJECT_MS = 5000;

/**
 * The backends of one balancer and the order a new connection (or request) tries them in:
 * round robin, each from its own starting point, so concurrent ones neither skip a live backend
 * nor retry a dead one twice. Passive health: a backend that just failed (refused, timed out,
 * closed without answering) comes last for a few seconds, so until the operator's next table (a
 * crashed replica, a host that went away) traffic does not keep paying for it; it is still tried
 * when nothing else is left.
 */
export class BackendRotation {
  private backends: MeshBackend[] = [];
  private next = 0;
  private readonly ejected = new Map<string, number>();

  set(list: readonly MeshBackend[]): void {
    this.backends = [...list];
    const ids = new Set(list.map((b) => b.id));
    for (const id of this.ejected.keys()) if (!ids.has(id)) this.ejected.delete(id);
  }

  has(id: string): boolean {
    return this.backends.some((b) => b.id === id);
  }

  /** Every backend, in the order the next connection tries them. */
  order(): MeshBackend[] {
    const list = this.backends;
    const start = this.next++;
    const now = Date.now();
    const rotated = list.map((_, i) => list[(start + i) % list.length]!);
    const fresh = rotated.filter((b) => (this.ejected.get(b.id) ?? 0) <= now);
    return fresh.length === rotated.length
      ? rotated
      : [...fresh, ...rotated.filter((b) => !fresh.includes(b))];
  }

  failed(id: string): void {
    this.ejected.set(id, Date.now() + EJECT_MS);
  }

  succeeded(id: string): void {
    this.ejected.delete(id);
  }
}
