/**
 * A `logs` call's answer on the wire, shared by the HTTP agent, the operator's admin relay and
 * their clients: NDJSON, one message a line.
 *
 *   {"line": {"at", "stream", "text"}}   a line the replica wrote
 *   {"keepalive": true}                  nothing written for LOG_KEEPALIVE_MS (proxies and the
 *                                        client's idle timeout see the stream is alive)
 *   {"error": {code, message}}           the stream failed; the last message
 *   {"end": true}                        the stream ended (a log read to its end, a stopped
 *                                        container); a stream cut without it was broken
 *
 * Written with backpressure (a slow reader slows the replica's log reader) and read with a cap on
 * the length of a message, so neither side buffers more than a few lines.
 */
import type { Writable } from 'node:stream';
import { BerthError, asBerthError, errorFromWire, type WireError } from '../core/errors.js';
import { LOG_KEEPALIVE_MS } from './agent-calls.js';
import type { ReplicaLogLine } from './types.js';

export type LogStreamMessage =
  { line: ReplicaLogLine } | { keepalive: true } | { error: WireError } | { end: true };

/** A message is a line of at most 16 KiB of text, JSON-escaped (up to 6 bytes a byte), and its fields. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 6 + 1024;

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/**
 * The lines of `lines` as messages, with a keepalive whenever none came for `keepaliveMs`, ending
 * with `end` or `error`. Stops (and ends `lines`) once `signal` aborts.
 */
export async function* logStreamMessages(
  lines: AsyncIterable<ReplicaLogLine>,
  signal: AbortSignal,
  keepaliveMs = LOG_KEEPALIVE_MS,
): AsyncGenerator<LogStreamMessage> {
  const iterator = lines[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<ReplicaLogLine>> | null = null;
  try {
    for (;;) {
      next ??= iterator.next();
      const step = await nextOrIdle(next, signal, keepaliveMs);
      if (step === 'aborted') return;
      if (step === 'idle') {
        yield { keepalive: true };
        continue;
      }
      next = null;
      if (step.done) {
        yield { end: true };
        return;
      }
      yield { line: step.value };
    }
  } catch (error) {
    yield { error: asBerthError(error).toWire() };
  } finally {
    // A pending next() is left to settle on its own; return() ends the source (its finally runs).
    next?.catch(() => undefined);
    void iterator.return?.()?.catch(() => undefined);
  }
}

/**
 * `next` settled, or `idle` after `ms`, or `aborted`. Every listener and timer is gone once it
 * settles: racing each line against one long-lived promise (Promise.race) would leave a reaction
 * on it per line, which held hundreds of MiB for a burst of lines (test/helpers/log-burst.ts).
 */
function nextOrIdle<T>(next: Promise<T>, signal: AbortSignal, ms: number): Promise<T | 'idle' | 'aborted'> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      resolve('aborted');
      return;
    }
    const settle = (finish: () => void) => () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      finish();
    };
    const onAbort = settle(() => resolve('aborted'));
    const timer = setTimeout(
      settle(() => resolve('idle')),
      ms,
    );
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(
      (value) => settle(() => resolve(value))(),
      (error: unknown) => settle(() => reject(asBerthError(error)))(),
    );
  });
}

/** Resolves once `out` drained or closed, leaving no listener behind. */
function drainedOrClosed(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** Writes `lines` to `out` as NDJSON until they end, fail, or `signal` aborts (the reader left). */
export async function writeLogStream(
  out: Writable,
  lines: AsyncIterable<ReplicaLogLine>,
  signal: AbortSignal,
): Promise<void> {
  for await (const message of logStreamMessages(lines, signal)) {
    if (out.destroyed) return;
    if (!out.write(`${JSON.stringify(message)}\n`)) {
      await drainedOrClosed(out);
    }
  }
  if (!out.destroyed) out.end();
}

/** NDJSON messages of `chunks`; a message longer than MAX_MESSAGE_BYTES fails the stream. */
async function* ndjsonMessages(chunks: AsyncIterable<Buffer>): AsyncGenerator<unknown> {
  let partial: Buffer[] = [];
  let partialBytes = 0;
  for await (const chunk of chunks) {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline < 0 ? chunk.length : newline;
      partial.push(chunk.subarray(start, end));
      partialBytes += end - start;
      if (partialBytes > MAX_MESSAGE_BYTES) {
        throw new BerthError(
          'ERR_BAD_REQUEST',
          `a log stream message longer than ${MAX_MESSAGE_BYTES} bytes`,
        );
      }
      if (newline < 0) break;
      const text = Buffer.concat(partial).toString('utf8');
      partial = [];
      partialBytes = 0;
      start = newline + 1;
      if (text.trim() !== '') yield JSON.parse(text) as unknown;
    }
  }
}

/**
 * The lines of an NDJSON log stream; its `error` thrown as the BerthError it was, a stream cut
 * before `end` as ERR_AGENT_UNREACHABLE. `heard` is told of every message (keepalives too).
 */
export async function* readLogStream(
  chunks: AsyncIterable<Buffer>,
  what: string,
  heard: () => void = () => undefined,
): AsyncGenerator<ReplicaLogLine> {
  for await (const message of ndjsonMessages(chunks)) {
    heard();
    const fields = (message ?? {}) as Partial<Record<string, unknown>>;
    if (fields['line'] !== undefined) yield fields['line'] as ReplicaLogLine;
    else if (fields['error'] !== undefined) throw errorFromWire(fields['error'], `${what} failed`);
    else if (fields['end'] === true) return;
  }
  throw new BerthError('ERR_AGENT_UNREACHABLE', `${what}: the stream was cut before its end`);
}
