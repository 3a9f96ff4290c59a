/**
 * Delivery ids already accepted, to refuse a replayed delivery. Bounded: the oldest id is
 * forgotten once `capacity` are kept (a Map keeps insertion order, so it is the first key).
 * A replay is harmless to correctness anyway (a reconcile is idempotent), but it must not be
 * a lever for making the operator work on demand.
 */
export class SeenDeliveries {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity = 10_000) {}

  /** Records `id`; false when it was seen before. */
  remember(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.set(id, true);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.keys().next().value!);
    return true;
  }
}
