/**
 * Parsers for the value formats manifests use. Each accepts exactly what the matching definition in
 * schemas/common.schema.json accepts (units.test.ts checks both agree) and returns null otherwise.
 */

const DURATION = /^(0|([0-9]+(\.[0-9]+)?(ms|h|m|s))+)$/;
const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)/g;
const MS_PER_UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "10s", "1m30s", "2h", "0" -> milliseconds (rounded to whole ms). Go-style, without signs. */
export function parseDuration(text: string): number | null {
  if (!DURATION.test(text)) return null;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) {
    ms += Number(amount) * (MS_PER_UNIT[unit ?? ''] ?? Number.NaN);
  }
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/**
 * Kubernetes quantity suffixes: Ki/Mi/Gi/Ti are powers of 1024, k/M/G/T powers of 1000. Docker's CLI
 * reads "512m" as 512 MiB while Kubernetes reads "512M" as 512e6 bytes; we follow Kubernetes and
 * refuse the lowercase m so neither reading is silently wrong. "K" is accepted as a common spelling of k.
 */
const MEMORY = /^([0-9]+|([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T))$/;
const BYTES_PER_UNIT: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/** "64Mi", "1Gi", "512M", 1048576 -> bytes. */
export function parseMemorySize(value: string | number): number | null {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : null;
  }
  const match = MEMORY.exec(value);
  if (match === null) return null;
  const [, whole, amount, unit] = match;
  const bytes =
    unit === undefined ? Number(whole) : Math.round(Number(amount) * (BYTES_PER_UNIT[unit] ?? Number.NaN));
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** The Docker API counts CPU in nano-CPUs (HostConfig.NanoCpus), as `docker run --cpus` does. */
export function cpusToNanoCpus(cpus: number): number {
  return Math.round(cpus * 1e9);
}

/**
 * File permission bits. Strings are octal ("0444", "444"), as chmod reads them; numbers are taken
 * as they are (YAML `0o444`, or a plain `0444` that the loader recovered as the string "0444").
 */
export function parseFileMode(value: number | string): number | null {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 0o777 ? value : null;
  }
  return /^0?[0-7]{3}$/.test(value) ? Number.parseInt(value, 8) : null;
}

/** Inverse of parseMemorySize for messages: the largest unit (binary or decimal) dividing the size exactly. */
export function formatMemorySize(bytes: number): string {
  for (const unit of ['Ti', 'T', 'Gi', 'G', 'Mi', 'M', 'Ki', 'k'] as const) {
    const size = BYTES_PER_UNIT[unit] ?? 1;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}
