/**
 * Compose value formats turned into berth's: Go durations, Docker memory sizes, CPU counts,
 * command strings, port specifications. Each returns null (or an error text) when the value
 * cannot be represented, so the caller can say where.
 */

const GO_DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** `1m30s` stays as written; `1500us` becomes `2ms` (berth counts in ms at the finest). */
export function composeDuration(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (text === '0') return '0';
  if (!new RegExp(`^(${GO_DURATION_PART.source})+$`).test(text)) return null;
  if (/^((\d+(\.\d+)?)(ms|s|m|h))+$/.test(text)) return text;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(GO_DURATION_PART))
    ms += Number(amount) * (UNIT_MS[unit ?? 's'] ?? 0);
  const rounded = Math.round(ms);
  return rounded === 0 ? '0' : `${rounded}ms`;
}

const MEMORY = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i;
const BINARY_UNITS: [string, number][] = [
  ['Gi', 1024 ** 3],
  ['Mi', 1024 ** 2],
  ['Ki', 1024],
];

/**
 * Docker reads `512m`, `1g`, `64M` as powers of 1024 (RAMInBytes); berth's `M` is 1000², so the
 * size is written with berth's binary units (`512Mi`), or in bytes when none divides it.
 */
export function composeMemory(value: unknown): string | number | null {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value !== 'string') return null;
  const match = MEMORY.exec(value.trim());
  if (match === null) return null;
  const factor = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match[2] ?? '').toLowerCase()] ?? 1;
  const bytes = Math.round(Number(match[1]) * factor);
  for (const [unit, size] of BINARY_UNITS) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return bytes;
}

export function composeCpus(value: unknown): number | null {
  const cpus = typeof value === 'string' ? Number(value.trim()) : value;
  return typeof cpus === 'number' && Number.isFinite(cpus) && cpus >= 0 ? cpus : null;
}

/**
 * A command written as one string, split as compose splits it (shell words: quotes and
 * backslashes, no expansion, no shell).
 */
export function splitShellWords(text: string): string[] | null {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] ?? '';
    if (quote === "'") {
      if (char === "'") quote = null;
      else word += char;
    } else if (quote === '"') {
      if (char === '"') quote = null;
      else if (char === '\\' && /["\\$`]/.test(text[i + 1] ?? '')) word += text[++i];
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote !== null) return null;
  if (inWord) words.push(word);
  return words;
}

/** What a compose port becomes; hostIp is reported, not converted. */
export interface ComposePort {
  target: number;
  published?: number;
  protocol: 'tcp' | 'udp';
  hostIp?: string;
}

const SHORT_PORT = /^(?:(?:(\[[^\]]+\]|[^:[\]]+):)?(\d+(?:-\d+)?)?:)?(\d+(?:-\d+)?)(?:\/(tcp|udp|sctp))?$/;

/** `8080`, `80:8080`, `127.0.0.1:80:8080/udp`, `8000-8001:8000-8001`; ranges are expanded. */
export function parseShortPort(spec: string | number): ComposePort[] | string {
  const match = SHORT_PORT.exec(String(spec).trim());
  if (match === null) return `not a port specification: ${JSON.stringify(spec)}`;
  const [, hostIp, published, target = '', protocol = 'tcp'] = match;
  if (protocol === 'sctp') return 'sctp ports are not supported (tcp and udp only)';
  const targets = portRange(target);
  const publishedPorts = published === undefined ? null : portRange(published);
  if (targets === null || (published !== undefined && publishedPorts === null)) {
    return `port out of range in ${JSON.stringify(spec)}`;
  }
  if (publishedPorts !== null && publishedPorts.length !== targets.length) {
    if (publishedPorts.length > 1)
      return `published range and target range differ in length in ${JSON.stringify(spec)}`;
  }
  return targets.map((port, index) => ({
    target: port,
    ...(publishedPorts === null
      ? {}
      : { published: publishedPorts[publishedPorts.length === 1 ? 0 : index] ?? port }),
    protocol: protocol as 'tcp' | 'udp',
    ...(hostIp === undefined ? {} : { hostIp: hostIp.replace(/^\[|\]$/g, '') }),
  }));
}

const MAX_RANGE = 1024;

function portRange(text: string): number[] | null {
  const [from = 0, to = from] = text.split('-').map(Number);
  if (!(from >= 1 && to <= 65535 && from <= to && to - from < MAX_RANGE)) return null;
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A scalar as compose reads it into a string field (numbers and booleans as written, null empty). */
export function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return value === null || value === undefined ? '' : JSON.stringify(value);
}
