/**
 * Lines of several replicas in time order: a k-way merge that holds one line per replica, so
 * reading any number of long logs takes memory for a handful of lines. Each source must be in
 * time order itself (an engine's log is).
 */
export async function* mergeInTimeOrder<T>(
  sources: readonly AsyncIterable<T>[],
  at: (item: T) => string,
): AsyncGenerator<T> {
  const iterators = sources.map((source) => source[Symbol.asyncIterator]());
  const heads = await Promise.all(iterators.map((iterator) => iterator.next()));
  try {
    for (;;) {
      let earliest = -1;
      heads.forEach((head, index) => {
        if (head.done) return;
        const current = heads[earliest];
        if (earliest < 0 || (current && !current.done && at(head.value) < at(current.value)))
          earliest = index;
      });
      if (earliest < 0) return;
      const head = heads[earliest]!;
      if (!head.done) yield head.value;
      heads[earliest] = await iterators[earliest]!.next();
    }
  } finally {
    await Promise.all(iterators.map(async (iterator) => iterator.return?.()));
  }
}
