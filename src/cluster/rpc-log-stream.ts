/**
 * A `logs` call over the cluster's WebSocket RPC: the one call answered by a stream.
 *
 *   operator -> agent   {id, method: 'logs', params}      the call, as any other
 *   agent -> operator   {id, chunk: ReplicaLogLine[]}     lines; [] is a keepalive
 *   operator -> agent   {id, ack: true}                   one chunk was consumed
 *   operator -> agent   {id, cancel: true}                the reader is gone: stop
 *   agent -> operator   {id, result: null} | {id, error}  the end
 *
 * Flow control by credit: the agent has at most LOG_WINDOW_CHUNKS non-empty chunks unacknowledged,
 * and a chunk holds at most LOG_CHUNK_LINES lines or LOG_CHUNK_BYTES of text (plus one line), so
 * the operator holds a few hundred KiB of a stream at most however chatty the replica. While it has
 * no credit the agent stops reading the replica's log (the engine's reader waits, nothing piles up);
 * with credit, a line goes out as soon as it is read.
 */
import type WebSocket from 'ws';
import { LOG_STREAM_IDLE_MS } from '../api/agent-calls.js';
import { logStreamMessages } from '../api/log-stream.js';
import type { ReplicaLogLine } from '../api/types.js';
import { BerthError } from '../core/errors.js';

export const LOG_WINDOW_CHUNKS = 4;
const LOG_CHUNK_LINES = 256;
const LOG_CHUNK_BYTES = 64 * 1024;

export type RpcStreamMessage = { id: number; chunk: ReplicaLogLine[] };
export type RpcStreamControl = { id: number; ack: true } | { id: number; cancel: true };

/** The agent's side of one stream: what the operator's ack and cancel reach. */
export interface ServedStream {
  ack(): void;
  cancel(): void;
}

function sendJson(socket: WebSocket, message: unknown): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}

/**
 * Sends `lines` as chunks of the stream `id` under the operator's credit; ends with the result or
 * the error. `streams` holds it while it runs (the connection routes acks and cancels by id).
 */
export async function serveLogStream(
  socket: WebSocket,
  id: number,
  lines: AsyncIterable<ReplicaLogLine>,
  streams: Map<number, ServedStream>,
): Promise<void> {
  const stop = new AbortController();
  let credit = LOG_WINDOW_CHUNKS;
  let batch: ReplicaLogLine[] = [];
  let batchBytes = 0;
  let wake: (() => void) | null = null;
  const flush = (): void => {
    if (batch.length === 0 || credit === 0) return;
    credit -= 1;
    sendJson(socket, { id, chunk: batch } satisfies RpcStreamMessage);
    batch = [];
    batchBytes = 0;
  };
  const waitForCredit = async (): Promise<void> => {
    while (credit === 0 && !stop.signal.aborted) await new Promise<void>((resolve) => (wake = resolve));
  };
  streams.set(id, {
    ack: () => {
      credit = Math.min(LOG_WINDOW_CHUNKS, credit + 1);
      flush();
      wake?.();
    },
    cancel: () => {
      stop.abort();
      wake?.();
    },
  });
  try {
    for await (const message of logStreamMessages(lines, stop.signal)) {
      if ('line' in message) {
        batch.push(message.line);
        batchBytes += message.line.text.length;
        flush();
        // Full and no credit: stop reading until the operator has consumed a chunk.
        if (batch.length >= LOG_CHUNK_LINES || batchBytes >= LOG_CHUNK_BYTES) {
          await waitForCredit();
          flush();
        }
      } else if ('keepalive' in message) {
        sendJson(socket, { id, chunk: [] } satisfies RpcStreamMessage);
      } else {
        if (batch.length > 0) await waitForCredit();
        flush();
        sendJson(socket, 'error' in message ? { id, error: message.error } : { id, result: null });
      }
    }
  } finally {
    streams.delete(id);
  }
}

/** The operator's side of one stream: its chunks as lines, acknowledged as they are consumed. */
export class LogStreamReader {
  private readonly queue: ReplicaLogLine[][] = [];
  private ended: { error: BerthError | null } | null = null;
  private wake: (() => void) | null = null;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly what: string,
    private readonly control: (message: RpcStreamControl) => void,
    private readonly id: number,
  ) {
    this.heard();
  }

  private heard(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(
      () =>
        this.end(
          new BerthError('ERR_AGENT_UNREACHABLE', `${this.what}: nothing came for ${LOG_STREAM_IDLE_MS} ms`),
        ),
      LOG_STREAM_IDLE_MS,
    );
  }

  chunk(lines: ReplicaLogLine[]): void {
    this.heard();
    if (lines.length > 0) this.queue.push(lines);
    this.wake?.();
  }

  end(error: BerthError | null): void {
    clearTimeout(this.idle);
    this.ended ??= { error };
    this.wake?.();
  }

  async *lines(): AsyncGenerator<ReplicaLogLine> {
    try {
      for (;;) {
        const chunk = this.queue.shift();
        if (chunk) {
          yield* chunk;
          this.control({ id: this.id, ack: true });
          continue;
        }
        if (this.ended) {
          if (this.ended.error) throw this.ended.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
      }
    } finally {
      clearTimeout(this.idle);
      if (!this.ended) this.control({ id: this.id, cancel: true });
    }
  }
}
