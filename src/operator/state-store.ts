import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BerthError, isErrorCode, type ErrorCode } from '../core/errors.js';
import type { Condition } from './conditions.js';

/**
 * The operator's own small state. Everything else (what runs) is read back from the engines.
 * - state.json: last good revision and failed revisions; replaced atomically (write a temp
 *   file, fsync, rename), so a kill -9 leaves either the old or the new file, never half.
 * - history.jsonl: the append-only audit log, one JSON object per line, fsynced per append.
 *   A torn last line (a crash mid-append) is skipped when reading.
 */
export interface OperatorState {
  /** The last revision whose rollout fully succeeded: the rollback target. */
  lastGood: { revision: string; at: string } | null;
  /** Revisions that failed (health, deadline, invalid manifests): not retried until a newer commit. */
  failed: Record<string, FailedRevision>;
  /** The repository last applied from, so `status` and `history` need no flags. */
  source?: { repo: string; path: string; branch: string };
}

export interface FailedRevision {
  at: string;
  reason: string;
  /** Why, as an error code (absent in entries written before codes were recorded). */
  code?: ErrorCode;
}

/** The error a failed revision was recorded with; older entries carry no code: a failed rollout. */
export function failedRevisionError(failed: FailedRevision): BerthError {
  return new BerthError(isErrorCode(failed.code) ? failed.code : 'ERR_ROLLOUT_UNHEALTHY', failed.reason);
}

/** The operator's conditions as last published, with when (so a reader sees how fresh they are). */
export interface RecordedConditions {
  at: string;
  conditions: Condition[];
}

export type HistoryOutcome = 'succeeded' | 'failed' | 'rolled back' | 'rollback failed' | 'invalid';

export interface HistoryEntry {
  at: string;
  revision: string;
  /** Set on entries written by a rollback: the revision that failed. */
  rolledBackFrom?: string;
  author?: string;
  message?: string;
  service: string | null;
  change: string;
  outcome: HistoryOutcome;
  reason: string | null;
  durationMs: number;
  started: { name: string; node: string }[];
  removed: { name: string; node: string }[];
}

/** History kept on disk: older entries are dropped when the log grows past twice this. */
export const DEFAULT_HISTORY_RETENTION = 1000;

const emptyState = (): OperatorState => ({ lastGood: null, failed: {} });

export class StateStore {
  readonly dir: string;
  private readonly retention: number;

  constructor(dir: string, options: { historyRetention?: number } = {}) {
    this.dir = dir;
    this.retention = options.historyRetention ?? DEFAULT_HISTORY_RETENTION;
  }

  private get statePath(): string {
    return join(this.dir, 'state.json');
  }

  private get conditionsPath(): string {
    return join(this.dir, 'conditions.json');
  }

  /** Written by `berth run` after every change of its conditions; read by `berth status`. */
  async writeConditions(conditions: Condition[], now: Date): Promise<void> {
    const recorded: RecordedConditions = { at: now.toISOString(), conditions };
    await writeAtomically(this.conditionsPath, `${JSON.stringify(recorded, null, 2)}\n`);
  }

  async readConditions(): Promise<RecordedConditions | null> {
    try {
      return JSON.parse(await readFile(this.conditionsPath, 'utf8')) as RecordedConditions;
    } catch {
      // Absent (no operator ran here yet) or torn: status shows none rather than failing.
      return null;
    }
  }

  private get historyPath(): string {
    return join(this.dir, 'history.jsonl');
  }

  async read(): Promise<OperatorState> {
    let text: string;
    try {
      text = await readFile(this.statePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw error;
    }
    try {
      return { ...emptyState(), ...(JSON.parse(text) as Partial<OperatorState>) };
    } catch {
      throw new BerthError(
        'ERR_STATE',
        `${this.statePath} is not valid JSON; move it away to start from an empty state`,
      );
    }
  }

  async write(state: OperatorState): Promise<void> {
    await writeAtomically(this.statePath, `${JSON.stringify(state, null, 2)}\n`);
  }

  async update(change: (state: OperatorState) => void): Promise<OperatorState> {
    const state = await this.read();
    change(state);
    await this.write(state);
    return state;
  }

  async appendHistory(entries: HistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await mkdir(this.dir, { recursive: true });
    const handle = await open(this.historyPath, 'a+');
    try {
      // After a crash mid-append the file ends in half a line; start on a fresh line so the torn
      // line does not swallow the first new entry.
      const { size } = await handle.stat();
      const last = Buffer.alloc(1);
      if (size > 0) await handle.read(last, 0, 1, size - 1);
      const lead = size > 0 && last[0] !== 0x0a ? '\n' : '';
      await handle.write(lead + entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
      await handle.sync();
    } finally {
      await handle.close();
    }
    const all = await this.readHistory();
    if (all.length > this.retention * 2) {
      await writeAtomically(
        this.historyPath,
        all
          .slice(-this.retention)
          .map((e) => `${JSON.stringify(e)}\n`)
          .join(''),
      );
    }
  }

  async readHistory(): Promise<HistoryEntry[]> {
    let text: string;
    try {
      text = await readFile(this.historyPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries: HistoryEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(JSON.parse(line) as HistoryEntry);
      } catch {
        // A torn line from a crash mid-append: everything before it is intact.
      }
    }
    return entries;
  }
}

export async function writeAtomically(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  // fsync the directory so the rename itself survives a power loss.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
