/**
 * A container's log stream as Docker sends it (`GET /containers/:id/logs?timestamps=1` of a
 * container without a TTY) turned into lines: frames of an 8-byte header (stream type, payload
 * length) and payload, each stream's bytes split at newlines, each line led by its timestamp.
 *
 * Bounded whatever the container writes: a frame is read as it comes, a line longer than
 * MAX_LOG_LINE_BYTES is cut there (the rest, up to its newline, is dropped), and lines are pulled
 * one at a time, so a slow reader slows the engine's reader rather than filling memory.
 */
import type { ReplicaLogLine } from '../api/types.js';

/** Docker's own log drivers split lines at 16 KiB; a longer one is cut here. */
export const MAX_LOG_LINE_BYTES = 16 * 1024;
const FRAME_HEADER_BYTES = 8;
const TRUNCATED = ' [berth: line cut at 16 KiB]';

type StreamName = ReplicaLogLine['stream'];

/** One stream's bytes since its last newline, at most MAX_LOG_LINE_BYTES of them. */
interface PartialLine {
  chunks: Buffer[];
  bytes: number;
  cut: boolean;
}

const emptyPartial = (): PartialLine => ({ chunks: [], bytes: 0, cut: false });

/** Docker's RFC3339Nano drops trailing zeros; nine digits make timestamps sort as text. */
export function normaliseTimestamp(stamp: string): string | null {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(stamp);
  if (!match) return null;
  const [, seconds, fraction = '', zone] = match;
  if (zone === 'Z') return `${seconds}.${fraction.padEnd(9, '0')}Z`;
  // Another zone: through Date (milliseconds), then the lost digits back.
  const date = new Date(`${seconds}${zone}`);
  if (Number.isNaN(date.getTime())) return null;
  return `${date.toISOString().slice(0, 19)}.${fraction.padEnd(9, '0')}Z`;
}

/** `2024-05-01T10:00:00.123456789Z text` -> the line; a line without a timestamp keeps `fallbackAt`. */
export function parseLogLine(stream: StreamName, raw: string, fallbackAt: string): ReplicaLogLine {
  const space = raw.indexOf(' ');
  const at = space > 0 ? normaliseTimestamp(raw.slice(0, space)) : null;
  if (at === null) return { at: fallbackAt, stream, text: raw };
  return { at, stream, text: raw.slice(space + 1) };
}

function appendToPartial(partial: PartialLine, bytes: Buffer): void {
  if (partial.cut) return;
  const room = MAX_LOG_LINE_BYTES - partial.bytes;
  if (bytes.length > room) {
    partial.chunks.push(bytes.subarray(0, room));
    partial.bytes += room;
    partial.cut = true;
    return;
  }
  partial.chunks.push(bytes);
  partial.bytes += bytes.length;
}

function takeLine(partial: PartialLine): string {
  const text = Buffer.concat(partial.chunks).toString('utf8');
  const line = partial.cut ? `${text}${TRUNCATED}` : text;
  Object.assign(partial, emptyPartial());
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** The complete lines of `payload` for `stream`, keeping the unfinished end in `partial`. */
function* splitLines(partial: PartialLine, payload: Buffer): Generator<string> {
  let start = 0;
  for (;;) {
    const newline = payload.indexOf(0x0a, start);
    if (newline < 0) break;
    appendToPartial(partial, payload.subarray(start, newline));
    yield takeLine(partial);
    start = newline + 1;
  }
  if (start < payload.length) appendToPartial(partial, payload.subarray(start));
}

/**
 * Frames cut into the payload bytes of each stream as they arrive: a frame's payload is handed
 * on in parts when it spans chunks, so nothing waits for a whole frame however long it says it is.
 */
class FrameReader {
  private header = Buffer.alloc(0);
  private stream: StreamName = 'stdout';
  private remaining = 0;

  /** The payload parts of `chunk`, by stream. */
  *read(chunk: Buffer): Generator<{ stream: StreamName; payload: Buffer }> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining === 0) {
        const needed = FRAME_HEADER_BYTES - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(offset, offset + needed)]);
        offset += Math.min(needed, chunk.length - offset);
        if (this.header.length < FRAME_HEADER_BYTES) return;
        this.stream = this.header[0] === 2 ? 'stderr' : 'stdout';
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - offset);
      yield { stream: this.stream, payload: chunk.subarray(offset, offset + take) };
      offset += take;
      this.remaining -= take;
    }
  }
}

/** The lines of a multiplexed log stream, as they arrive. */
export async function* demultiplexLogLines(
  raw: AsyncIterable<Buffer>,
  now: () => Date = () => new Date(),
): AsyncGenerator<ReplicaLogLine> {
  const frames = new FrameReader();
  const partials: Record<StreamName, PartialLine> = { stdout: emptyPartial(), stderr: emptyPartial() };
  let lastAt = normaliseTimestamp(now().toISOString())!;
  const emit = (stream: StreamName, text: string): ReplicaLogLine => {
    const line = parseLogLine(stream, text, lastAt);
    lastAt = line.at;
    return line;
  };
  for await (const chunk of raw) {
    for (const part of frames.read(chunk)) {
      for (const text of splitLines(partials[part.stream], part.payload)) yield emit(part.stream, text);
    }
  }
  for (const stream of ['stdout', 'stderr'] as const) {
    if (partials[stream].bytes > 0) yield emit(stream, takeLine(partials[stream]));
  }
}
