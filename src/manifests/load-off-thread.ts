/**
 * loadManifests on a worker thread. Parsing is linear but not free: 1 MiB of YAML takes about a
 * second of CPU, and a revision may hold 8 MiB (MAX_MANIFEST_REVISION_BYTES). On the operator's
 * event loop that would stall heartbeats, the mesh and the API for as long; on a worker it stalls
 * nothing, and a load that runs away is stopped after LOAD_TIMEOUT_MS.
 */
import { Worker } from 'node:worker_threads';

import { restoreYoungGenerationLimit } from '../core/young-generation.js';
import type { LoadOptions, ManifestFile } from './load.js';
import type { LoadResult } from './types.js';

/**
 * A load that takes longer than this (60 s) is stopped and the revision refused: at the size
 * limits a load takes seconds, so only a pathological input (or a starved machine) gets here.
 */
export const LOAD_TIMEOUT_MS = 60_000;

/**
 * A worker with no load for this long (5 s) is stopped. A worker is a second V8 heap with its own
 * YAML and schema modules, 15 to 30 MiB an operator would keep for nothing between commits (loads
 * are cached per revision); starting one again costs a fraction of a second, once per commit.
 */
export const IDLE_STOP_MS = 5_000;

interface Pending {
  resolve: (result: LoadResult) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One worker, started on first use and kept until it idles for IDLE_STOP_MS. It keeps the process
 * alive only while a load is waiting for it (a one-shot command must not exit before its answer,
 * nor hang after it).
 */
export class OffThreadManifestLoader {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeoutMs = LOAD_TIMEOUT_MS,
    private readonly idleStopMs = IDLE_STOP_MS,
  ) {}

  load(files: readonly ManifestFile[], options: LoadOptions): Promise<LoadResult> {
    clearTimeout(this.idleTimer);
    const worker = this.started();
    const id = this.nextId++;
    return new Promise<LoadResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // The worker is busy with this load and nothing else can interrupt it.
        this.stop(new Error('stopped: another load took too long'));
        resolve({
          ok: false,
          problems: [
            {
              file: files[0]?.path ?? '.',
              line: 1,
              col: 1,
              message: `loading the manifests took longer than ${this.timeoutMs / 1000} s; refused`,
            },
          ],
        });
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      worker.ref();
      worker.postMessage({ id, files, options });
    });
  }

  /**
   * Starts the worker ahead of a load that is about to come (its files are still being read): a
   * cold worker spends most of a load's time importing its modules, which then overlaps that
   * read. Stopped again after IDLE_STOP_MS if no load comes.
   */
  warm(): void {
    if (this.worker !== undefined) return;
    const worker = this.started();
    this.idleTimer = setTimeout(() => {
      if (this.worker === worker && this.pending.size === 0) this.stop(new Error('idle'));
    }, this.idleStopMs).unref();
  }

  /** Stops the worker; loads still waiting are rejected. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.stop(new Error('the manifest loader was closed'));
    await worker?.terminate();
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    // Beside this module: load-worker.js once built; load-worker.ts when run from source (tests),
    // where the thread registers tsx first: a worker does not inherit its parent's loader hooks.
    const worker = import.meta.url.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(new URL('./load-worker.ts', import.meta.url).href)}); });`,
          { eval: true },
        )
      : new Worker(new URL('./load-worker.js', import.meta.url));
    worker.on('message', (message: { id: number; result: LoadResult }) => {
      const waiting = this.pending.get(message.id);
      if (waiting === undefined) return;
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (this.pending.size === 0) {
        worker.unref();
        this.idleTimer = setTimeout(() => {
          if (this.worker === worker && this.pending.size === 0) this.stop(new Error('idle'));
        }, this.idleStopMs).unref();
      }
      waiting.resolve(message.result);
    });
    worker.once('online', restoreYoungGenerationLimit);
    worker.on('error', (error) => this.stop(error));
    worker.on('exit', () => {
      if (this.worker === worker) this.stop(new Error('the manifest loader thread exited'));
    });
    // After the listeners: listening for its messages refs the thread again. Unreferenced, a
    // thread warmed for a load that never comes does not hold a one-shot command's exit.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private stop(reason: Error): void {
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      this.pending.delete(id);
      waiting.reject(reason);
    }
    void worker?.terminate();
  }
}
