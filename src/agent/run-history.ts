/**
 * What this agent has seen of each container's runs, to tell a crash from a container that has
 * simply been up all along: the engine's restart count when the agent first saw a container (growth
 * means it crashed and was restarted since), and the `die` events it saw per container id.
 */
import type { RuntimeContainer } from './runtime.js';

interface RestartBaseline {
  id: string;
  restartCount: number;
}

export class RunHistory {
  /** By container name. */
  private readonly baselines = new Map<string, RestartBaseline>();
  /** By container id. */
  private readonly deaths = new Map<string, { count: number; exitCode: number | null }>();

  /** A container as seen now; keeps the first sighting of each container id. */
  noteSeen(container: RuntimeContainer): void {
    const known = this.baselines.get(container.name);
    if (known === undefined || known.id !== container.id) {
      this.baselines.set(container.name, { id: container.id, restartCount: container.restartCount });
    }
  }

  /** A container this agent has just created: it has never restarted. */
  noteCreated(name: string, id: string): void {
    this.baselines.set(name, { id, restartCount: 0 });
  }

  forget(name: string): void {
    this.baselines.delete(name);
  }

  /** Names of the containers seen, for forgetting the ones that are gone. */
  names(): string[] {
    return [...this.baselines.keys()];
  }

  /** Restarted by the engine since this agent first saw this very container. */
  restartedSinceSeen(container: RuntimeContainer): boolean {
    const baseline = this.baselines.get(container.name);
    return baseline?.id === container.id && container.restartCount > baseline.restartCount;
  }

  noteDeath(id: string, exitCode: number | null): void {
    this.deaths.set(id, { count: this.deathCount(id) + 1, exitCode });
  }

  forgetDeaths(id: string): void {
    this.deaths.delete(id);
  }

  deathCount(id: string): number {
    return this.deaths.get(id)?.count ?? 0;
  }

  /** Exit code of the last `die` event seen, for a container that was restarted since. */
  lastExitCode(id: string): number | null {
    return this.deaths.get(id)?.exitCode ?? null;
  }
}
