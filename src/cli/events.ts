/**
 * `berth events [-f] [--format json]`: the operator's event stream (src/operator/event-routes.ts),
 * read from its --listen port: the URL `berth run` recorded in the state dir, or --operator.
 * Prints the events the operator holds; with -f, then follows the live stream, reconnecting
 * with the last id seen so nothing is printed twice or (while the operator still holds it) missed.
 */
import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import type { OperatorEvent } from '../operator/event-bus.js';
import { readListenUrl } from '../operator/listen-record.js';
import { DEFAULT_STATE_DIR } from './context.js';
import { waitForShutdownSignal } from './shutdown-signal.js';

interface EventsOptions {
  stateDir: string;
  operator?: string;
  follow?: boolean;
  format: 'text' | 'json';
}

const RECONNECT_MS = 1000;

export function registerEventsCommand(program: Command): void {
  const command = new Command('events')
    .description(
      "the operator's events: reconciles, rollout steps, nodes up and down, replica health, Job runs",
    )
    .option(
      '--state-dir <dir>',
      'operator state directory (holds the URL `berth run --listen` serves on)',
      DEFAULT_STATE_DIR,
    )
    .option('--operator <url>', "the operator's --listen URL (default: as recorded in the state dir)")
    .option('-f, --follow', 'keep printing events as they happen')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  command.action(async (options: EventsOptions) => {
    const base = (options.operator ?? (await readListenUrl(options.stateDir)))?.replace(/\/+$/, '');
    if (!base) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `no operator URL: give --operator, or run berth run --listen with --state-dir ${options.stateDir}`,
      );
    }
    const print = (event: OperatorEvent) =>
      process.stdout.write(
        options.format === 'json' ? `${JSON.stringify(event)}\n` : `${formatEvent(event)}\n`,
      );
    let lastId = 0;
    for (const event of await heldEvents(base)) {
      print(event);
      lastId = event.id;
    }
    if (!options.follow) return;
    const stop = new AbortController();
    void waitForShutdownSignal().then(() => stop.abort());
    while (!stop.signal.aborted) {
      try {
        lastId = await followEvents(base, lastId, stop.signal, print);
      } catch (error) {
        if (stop.signal.aborted) break;
        process.stderr.write(
          `berth: event stream: ${error instanceof Error ? error.message : String(error)}\n`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  });
  program.addCommand(command);
}

async function heldEvents(base: string): Promise<OperatorEvent[]> {
  let response: Response;
  try {
    response = await fetch(`${base}/v1/events?since=0`);
  } catch (error) {
    throw new BerthError('ERR_AGENT_UNREACHABLE', `cannot reach the operator at ${base}: ${String(error)}`);
  }
  if (!response.ok)
    throw new BerthError('ERR_AGENT_UNREACHABLE', `the operator answered HTTP ${response.status}`);
  return ((await response.json()) as { events: OperatorEvent[] }).events;
}

/** Reads the SSE stream from after `lastId` until it ends; returns the last id printed. */
async function followEvents(
  base: string,
  lastId: number,
  signal: AbortSignal,
  print: (event: OperatorEvent) => void,
): Promise<number> {
  const response = await fetch(`${base}/v1/events`, {
    headers: { accept: 'text/event-stream', 'last-event-id': String(lastId) },
    signal,
  });
  if (!response.ok || !response.body) throw new Error(`the operator answered HTTP ${response.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice('data: '.length))
        .join('\n');
      if (data === '') continue;
      const event = JSON.parse(data) as OperatorEvent;
      if (event.id <= lastId) continue;
      lastId = event.id;
      print(event);
    }
  }
  return lastId;
}

/** `2024-05-01T10:00:00.000Z  replica-healthy  service=default/web node=local ...` */
export function formatEvent(event: OperatorEvent): string {
  const fields = Object.entries(event.data)
    .filter(([key, value]) => key !== 'type' && value !== null && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return [event.at, event.type, ...fields].join('  ');
}
