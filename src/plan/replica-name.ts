/**
 * Deterministic replica identity: the container name derives from namespace, service, slot and
 * spec hash, so creating a replica is idempotent and a restarted operator finds its own work.
 * Dots separate the parts because names and namespaces are DNS labels, which contain none.
 */
export function replicaName(namespace: string, service: string, slot: string, specHash: string): string {
  return `berth.${namespace}.${service}.${slot}.${specHash.slice(0, 12)}`;
}

export function serviceKey(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}

/** Byte-order comparison: deterministic across locales, and much cheaper than localeCompare. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
