import type { RuntimeContainer } from './runtime.js';

/** What the engine's container list says of a container, enough to tell a cached inspection is stale. */
export interface ListedContainer {
  id: string;
  /** As listed: `/name`. */
  names: string[];
  state: string;
}

/**
 * The inspections of a node's containers, kept between two reads of the whole node.
 *
 * Every snapshot of a node used to inspect every container: at 100 containers, 100 engine calls
 * for each mesh resync and each reconcile, the most of an idle operator's CPU. An inspection
 * changes only when its container starts, dies or goes (events the runtime watches), or when
 * berth changes it (create, start, stop, remove, through the runtime); anything else behind
 * berth's back (pause, rename) shows in the list, which is still read every time. So an
 * inspection is reused while an event stream has been open all along since it was made, no event
 * and no change by berth came since, and the list still shows it with the same name and state.
 * Any event or change forgets every inspection: cheap, and rare while nothing changes. An
 * inspection is also made again after MAX_AGE_MS, in case a stream broke without a word.
 */
const MAX_AGE_MS = 5 * 60_000;

export class InspectCache {
  private readonly entries = new Map<string, { container: RuntimeContainer; keptAt: number }>();
  /** Open event streams: without one, nothing says when an inspection goes stale. */
  private openStreams = 0;
  /** Moves on at each forget, so an inspection that was under way then is not kept. */
  private generation = 0;

  streamOpened(): void {
    this.openStreams++;
    this.forget();
  }

  streamClosed(): void {
    this.openStreams = Math.max(0, this.openStreams - 1);
    this.forget();
  }

  /** A container event, or a change berth makes: every inspection may be stale. */
  forget(): void {
    this.generation++;
    this.entries.clear();
  }

  /** Taken before an inspection starts, handed to `keep` with its result. */
  mark(): number {
    return this.generation;
  }

  /** The cached inspection of a listed container, if it can be trusted. */
  reuse(listed: ListedContainer): RuntimeContainer | undefined {
    const entry = this.entries.get(listed.id);
    if (entry === undefined) return undefined;
    const { container, keptAt } = entry;
    const stale = Date.now() - keptAt > MAX_AGE_MS;
    if (stale || listed.state !== container.state || !listed.names.includes(`/${container.name}`)) {
      this.entries.delete(listed.id);
      return undefined;
    }
    return container;
  }

  keep(container: RuntimeContainer, mark: number): void {
    if (this.openStreams > 0 && mark === this.generation)
      this.entries.set(container.id, { container, keptAt: Date.now() });
  }

  /** Drops what the list no longer shows. */
  retainOnly(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys()) if (!ids.has(id)) this.entries.delete(id);
  }
}
