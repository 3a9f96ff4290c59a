import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The process logger. JSON lines on stderr (stdout is for command output); level from
 * BERTH_LOG_LEVEL (default `info`). Secret values are never passed to a logger; the redact
 * paths are a second line of defence for request bodies that carry file contents.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'berth',
      level: options.level ?? process.env['BERTH_LOG_LEVEL'] ?? 'info',
      redact: {
        paths: ['*.files[*].contentBase64', 'files[*].contentBase64', 'token', '*.token'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}

/** A logger that drops everything, for tests and quiet commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
