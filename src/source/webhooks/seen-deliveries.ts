import { createHash } from 'node:crypto';

/** Ids longer than this are kept as their SHA-256, so each remembered id costs at most ~100 bytes. */
const MAX_KEPT_ID_LENGTH = 64;

/**
 * Delivery ids already accepted, to refuse a replayed delivery. Bounded: the oldest id is
 * forgotten once `capacity` are kept (a Map keeps insertion order, so it is the first key), and a
 * long id is kept as its hash, so the whole set stays under about 1 MB at the default capacity.
 * A replay is harmless to correctness anyway (a reconcile is idempotent), but it must not be
 * a lever for making the operator work on demand.
 */
export class SeenDeliveries {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity = 10_000) {}

  /** Records `id`; false when it was seen before. */
  remember(id: string): boolean {
    const key =
      id.length <= MAX_KEPT_ID_LENGTH ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`;
    if (this.ids.has(key)) return false;
    this.ids.set(key, true);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.keys().next().value!);
    return true;
  }

  /** How many ids are remembered (at most the capacity). */
  get size(): number {
    return this.ids.size;
  }
}
