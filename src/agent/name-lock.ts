/**
 * One operation at a time per replica name: concurrent ensure/remove calls (and the clean-up of a
 * container removed behind berth's back) must not interleave. A failed operation does not block
 * the next one.
 */
export interface NameLock {
  exclusively<T>(name: string, work: () => Promise<T>): Promise<T>;
  /** Names with an operation queued or running. */
  held(): number;
}

export function createNameLock(): NameLock {
  const tails = new Map<string, Promise<unknown>>();
  return {
    exclusively(name, work) {
      const previous = tails.get(name) ?? Promise.resolve();
      const next = previous.catch(() => undefined).then(work);
      const settled = next.catch(() => undefined);
      tails.set(name, settled);
      void settled.then(() => {
        if (tails.get(name) === settled) tails.delete(name);
      });
      return next;
    },
    held: () => tails.size,
  };
}
