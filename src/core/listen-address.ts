import { BerthError } from './errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * The one parser of every listen option (`--listen`, `--cluster-listen`, an agent's `--listen`):
 * `HOST:PORT`, `[IPv6]:PORT`, `:PORT` (every address), `PORT` or `HOST` alone (when the option
 * has a default port). A bare port listens on `defaultHost`; `:PORT` on every address.
 */
export function parseListenAddress(
  value: string,
  options: { option: string; defaultHost?: string; defaultPort?: number },
): ListenAddress {
  const defaultHost = options.defaultHost ?? '127.0.0.1';
  const hostOnly = options.defaultPort !== undefined;
  const shape = hostOnly
    ? 'HOST:PORT, [IPv6]:PORT, :PORT, PORT or HOST'
    : 'HOST:PORT, [IPv6]:PORT, :PORT or PORT';
  const refuse = (): never => {
    throw new BerthError('ERR_BAD_REQUEST', `${options.option} wants ${shape}, got "${value}"`);
  };
  if (/^\d{1,5}$/.test(value)) return withPort(defaultHost, value) ?? refuse();
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*))(?::(\d{1,5}))?$/.exec(value);
  if (match === null) return refuse();
  const host = match[1] ?? match[2] ?? '';
  if (match[3] === undefined) {
    if (!hostOnly || host === '') return refuse();
    return { host, port: options.defaultPort ?? 0 };
  }
  return withPort(host === '' ? '0.0.0.0' : host, match[3]) ?? refuse();
}

function withPort(host: string, port: string): ListenAddress | null {
  const n = Number(port);
  return n > 65535 ? null : { host, port: n };
}

/**
 * Whether `host` (an address, `localhost`, or a URL's `[IPv6]` host name) is this machine's
 * loopback: traffic to it never leaves the host, so it may carry a token in plain text.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
