/**
 * The berth CLI as tests run it: as a real process with a real exit code — the build in dist/
 * (what `npm ci` makes and users run) when it is newer than every source file, else from source
 * through tsx (so a test after an edit never runs stale code; tsx costs about a second a start). `runBerth` runs a command to its end; `startBerth` starts `berth run` or `berth agent`,
 * returns once it is ready and gives a handle to stop it.
 *
 *   const operator = await startBerth('run', ['--repo', repo.dir, '--listen', '127.0.0.1:0']);
 *   await fetch(`${operator.url}/healthz`);
 *   after(() => operator.stop());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('./berth-entry.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const builtEntry = join(root, 'bin', 'berth.js');

/** The newest modification time of the files under `dir`. */
function newestUnder(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether dist/ was built after the last change to src/ (and schemas/, which the build reads). */
export function builtIsCurrent(): boolean {
  try {
    const builtAt = statSync(join(root, 'dist', 'cli', 'main.js')).mtimeMs;
    return Math.max(newestUnder(join(root, 'src')), newestUnder(join(root, 'schemas'))) <= builtAt;
  } catch {
    return false;
  }
}

const command: string[] = builtIsCurrent() ? [builtEntry] : ['--import', 'tsx', entry];

/** How to start the berth CLI as tests do: what an agent started by a test uses to start its mesh host. */
export function berthFromSource(): { command: string; args: string[] } {
  return { command: process.execPath, args: command };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

function spawnBerth(
  args: string[],
  options: SpawnOptions,
  stdin: 'ignore' | 'pipe' = 'ignore',
): ChildProcess {
  return spawn(process.execPath, [...command, ...args], {
    cwd: options.cwd ?? process.cwd(),
    // JSON logs whatever the developer's terminal prefers: readiness is read from them.
    env: { ...process.env, NO_COLOR: '1', BERTH_LOG_FORMAT: 'json', ...options.env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
}

/** Runs `berth ...args` to its end, with `input` on stdin if given; its whole output and exit code. */
export function runBerth(
  args: string[],
  options: SpawnOptions & { input?: string | Uint8Array } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnBerth(args, options, options.input === undefined ? 'ignore' : 'pipe');
    child.stdin?.end(options.input);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The flags that name what a command works on: the repository (and folder in it), state dir, node. */
export function targetArgs(target: {
  repo: string;
  path?: string;
  stateDir: string;
  node?: string;
}): string[] {
  return [
    ...['--repo', target.repo],
    ...(target.path === undefined ? [] : ['--path', target.path]),
    ...['--state-dir', target.stateDir],
    ...(target.node === undefined ? [] : ['--node', target.node]),
  ];
}

/** A `--schedule` that never fires while a test runs (midnight on January 1st): only other triggers deploy. */
export const SCHEDULE_NEVER = ['--schedule', '0 0 1 1 *'];

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running `berth run` or `berth agent`, ready. */
export interface BerthProcess {
  readonly child: ChildProcess;
  /** The operator's --listen address, or the URL a listening agent serves on; null otherwise. */
  readonly url: string | null;
  /** The `--agent-token` a listening agent printed for the operator. */
  readonly agentToken: string | null;
  /** `berth agent --join` endpoint and token that an operator with --cluster-listen printed. */
  readonly join: { endpoint: string; token: string } | null;
  /** The last 64 KiB (or `keep` characters) of stdout. */
  stdout(): string;
  /** The last 64 KiB (or `keep` characters) of stderr: the JSON log. */
  stderr(): string;
  /** The last 64 KiB (or `keep` characters) of both, in the order written: for failure messages. */
  output(): string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  /** Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL if it outlives the bound. */
  stop(signal?: NodeJS.Signals): Promise<ProcessExit>;
}

const OUTPUT_TAIL_CHARS = 64 * 1024;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

type ReadyLine = { stream: 'stdout' | 'stderr'; line: RegExp };

/** The lines that say a command is ready to be used: it writes them once it serves. */
function readyLines(command: 'run' | 'agent', args: string[]): ReadyLine[] {
  if (command === 'agent')
    return [{ stream: 'stdout', line: /^berth agent: node \S+ (serving on|joined) /m }];
  // Logged once the listeners are up, before the first reconcile.
  const started: ReadyLine = { stream: 'stderr', line: /"msg":"operator started"/ };
  // Printed before that, but on the other pipe: it may be read later.
  const joinCommand: ReadyLine = { stream: 'stdout', line: /berth agent --join \S+ --token \S+\n/ };
  return args.includes('--cluster-listen') ? [started, joinCommand] : [started];
}

/**
 * Starts `berth COMMAND ...args` and resolves once it is ready (see READY). Its output is always
 * read, so it never blocks on a full pipe; the last 64 KiB of it are kept. When it exits or stays
 * silent before it is ready, it is stopped and the start fails with its output. The caller stops
 * it (`stop()`, in `after`), also when a test failed.
 */
export async function startBerth(
  command: 'run' | 'agent',
  args: string[],
  options: SpawnOptions & {
    /** How much output to keep, in characters: Infinity where a test searches all of it. */
    keep?: number;
  } = {},
): Promise<BerthProcess> {
  const child = spawnBerth([command, ...args], options);
  const limit = options.keep ?? OUTPUT_TAIL_CHARS;
  const tails = { stdout: '', stderr: '', output: '' };
  const keep = (stream: 'stdout' | 'stderr', chunk: Buffer): void => {
    tails[stream] = (tails[stream] + chunk.toString()).slice(-limit);
    tails.output = (tails.output + chunk.toString()).slice(-limit);
  };
  child.stdout?.on('data', (chunk: Buffer) => keep('stdout', chunk));
  child.stderr?.on('data', (chunk: Buffer) => keep('stderr', chunk));
  // 'close', not 'exit': by then every byte it wrote has been read.
  const exited = new Promise<ProcessExit>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<ProcessExit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const bound = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(bound);
    }
  };

  try {
    await readiness(child, readyLines(command, args), tails, exited);
  } catch (error) {
    await stop('SIGKILL');
    throw new Error(`berth ${command} ${(error as Error).message}:\n${tails.output}`);
  }

  const address = /"address":"([^"]+)"[^\n]*"msg":"serving \/healthz/.exec(tails.stderr)?.[1];
  const serving = /^berth agent: node \S+ serving on (\S+)/m.exec(tails.stdout)?.[1];
  const joinLine = /berth agent --join (\S+) --token (\S+)/.exec(tails.stdout);
  return {
    child,
    url: (command === 'run' ? address : serving) ?? null,
    agentToken: /--agent \S+ --agent-token (\S+)/.exec(tails.stdout)?.[1] ?? null,
    join: joinLine ? { endpoint: joinLine[1]!, token: joinLine[2]! } : null,
    stdout: () => tails.stdout,
    stderr: () => tails.stderr,
    output: () => tails.output,
    exited,
    stop,
  };
}

function readiness(
  child: ChildProcess,
  lines: ReadyLine[],
  tails: Record<'stdout' | 'stderr', string>,
  exited: Promise<ProcessExit>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      if (error) reject(error);
      else resolve();
    };
    const check = (): void => {
      if (lines.every(({ stream, line }) => line.test(tails[stream]))) done();
    };
    const timer = setTimeout(
      () => done(new Error(`not ready after ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('error', done);
    void exited.then(({ code, signal }) => done(new Error(`exited (${signal ?? code}) before it was ready`)));
  });
}

/** Waits for `condition` to hold, polling; fails with `what` after `timeoutMs` (a bound, not a timing assert). */
export async function eventually<T>(
  what: string,
  condition: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for: ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
