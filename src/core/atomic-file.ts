import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BerthError } from './errors.js';

/** What a failed `writeFileAtomic` carries in its `data`. */
export interface StateWriteFailure {
  path: string;
  /** The errno code of the cause (ENOSPC, EIO, EROFS, EACCES, ...), when it had one. */
  cause: string | null;
  /**
   * True only when the new content is already in place and only the directory fsync after the
   * rename failed: the file reads as new, but the rename may not survive a power loss. Callers
   * that keep the written state in memory should then keep it, so memory and disk agree.
   */
  replaced: boolean;
}

/**
 * The one way berth writes a state file (state.json, history compaction, nodes.json, cluster
 * keys and certificates, agent credentials, replica files): a temp file in the same directory,
 * write, fsync the file, rename over the target, fsync the directory. A crash leaves the old or
 * the new content, never half of it.
 *
 * On any failure the temp file is removed and the call rejects with an `ERR_STATE_WRITE` BerthError (transient: the operator retries)
 * naming the file and the cause (`data` is a `StateWriteFailure`); the target then still holds
 * its previous content, except in the `replaced` case. Each call stands alone: a failed write
 * leaves nothing behind that would make a later write fail.
 */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const dir = dirname(path);
  // Random, so two writers of one file (in one process or two) never share a temp file.
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAndSync(temp, content, mode);
    await rename(temp, path);
    renamed = true;
    await syncDirectory(dir);
  } catch (error) {
    if (!renamed) await rm(temp, { force: true }).catch(() => undefined);
    throw stateWriteError(path, error, renamed);
  }
}

async function writeAndSync(temp: string, content: string | Uint8Array, mode: number): Promise<void> {
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync of the directory, so the rename itself survives a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle: FileHandle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The ERR_STATE_WRITE error for a failed write of `path`. */
export function stateWriteError(path: string, error: unknown, replaced = false): BerthError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? null;
  const reason = error instanceof Error ? error.message : String(error);
  const failure: StateWriteFailure = { path, cause: code, replaced };
  const outcome = replaced
    ? 'the new content is in place but may not survive a power loss'
    : 'it keeps its previous content';
  return new BerthError('ERR_STATE_WRITE', `cannot write ${path} (${reason}); ${outcome}`, {
    cause: error,
    data: failure,
  });
}

/** Whether a rejected `writeFileAtomic` still put the new content in place (see `StateWriteFailure`). */
export function writeLanded(error: unknown): boolean {
  if (!(error instanceof BerthError) || error.code !== 'ERR_STATE_WRITE') return false;
  return (error.data as Partial<StateWriteFailure> | undefined)?.replaced === true;
}

/** The file's content, or null when it does not exist. */
export async function readFileIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
