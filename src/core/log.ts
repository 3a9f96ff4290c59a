import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { PrettyOptions, PrettyStream } from 'pino-pretty';

import { redactCredentials } from './url-credential.js';

export type { Logger } from 'pino';

/**
 * Where log lines go: stderr (stdout is for command output). JSON lines, as log collectors want
 * them, unless stderr is a terminal: then one readable line per event, coloured unless NO_COLOR
 * is set. BERTH_LOG_FORMAT=json or =pretty forces either.
 */
function logDestination(): DestinationStream {
  const format = process.env['BERTH_LOG_FORMAT'] ?? (process.stderr.isTTY ? 'pretty' : 'json');
  if (format !== 'pretty') return pino.destination(2);
  // Loaded only here: an operator or agent run as a service logs JSON, and pino-pretty (with its
  // colour and date libraries) would stay in its memory unused. CommonJS, so require is synchronous.
  const pretty = createRequire(import.meta.url)('pino-pretty') as (options: PrettyOptions) => PrettyStream;
  return pretty({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY && process.env['NO_COLOR'] === undefined,
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    ignore: 'pid,hostname,name',
  });
}

/**
 * The process logger (see logDestination for the format); level from
 * BERTH_LOG_LEVEL (default `info`). Secret values are never passed to a logger. Two lines of
 * defence behind that: the redact paths (request bodies that carry file contents, fields named
 * like a credential), and every finished line is cleaned of URL userinfo and of the git
 * credentials this process knows (an error of a library may quote them).
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'berth',
      level: options.level ?? process.env['BERTH_LOG_LEVEL'] ?? 'info',
      redact: {
        paths: [
          '*.files[*].contentBase64',
          'files[*].contentBase64',
          'token',
          '*.token',
          'password',
          '*.password',
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.headers.authorization',
          'headers.Authorization',
          '*.headers.Authorization',
        ],
        censor: '[redacted]',
      },
      hooks: { streamWrite: redactCredentials },
    },
    logDestination(),
  );
}

/** A logger that drops everything, for tests and quiet commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
