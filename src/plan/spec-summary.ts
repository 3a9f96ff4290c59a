import { createHash } from 'node:crypto';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';

/**
 * The part of a service spec that defines its containers, with config contents and secret
 * ciphertexts replaced by digests. It is stored on every replica (label `berth.spec-summary`) so
 * a plan can show field-level changes against the live cluster, and its hash is the replica's
 * spec hash: drift detection is a hash comparison. Replica count, placement and update policy
 * are deliberately not part of it: changing them must not restart containers.
 */
export interface SpecSummary {
  image: string;
  command: string[] | null;
  args: string[] | null;
  env: Record<string, string>;
  ports: { target: number; protocol: string }[];
  configs: { target: string; source: string; key: string; mode: number; digest: string }[];
  secrets: {
    target: string;
    source: string;
    key: string;
    mode: number;
    uid: number;
    gid: number;
    digest: string;
  }[];
  healthcheck: ServiceSpec['healthcheck'];
  limits: ServiceSpec['resources']['limits'];
  restart: ServiceSpec['restart'];
  stopGracePeriodMs: number;
  user: string | null;
  /**
   * Present only when set (true, or a capability named): summaries, and so the spec hashes, of
   * services that use neither stay what they were before these fields existed, so upgrading berth
   * restarts nothing.
   */
  readOnlyRootFilesystem?: true;
  capabilities?: ServiceSpec['capabilities'];
  workingDir: string | null;
  init: boolean;
  /**
   * Present only when the service has them (volumeReclaim only when `delete`), for the same reason
   * as readOnlyRootFilesystem. volumeReclaim is here because the containers are all that is left
   * of a Service removed from git: their summary says whether its volumes go with it. A volume's
   * driver is left out: it is read when the volume is created only, so changing it restarts nothing.
   */
  volumes?: { name: string; target: string; readOnly: boolean }[];
  tmpfs?: ServiceSpec['tmpfs'];
  volumeReclaim?: 'delete';
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Environment as the container sees it: `envFrom` config entries first, explicit `env` wins. */
export function resolveEnv(
  spec: ServiceSpec,
  desired: Pick<DesiredState, 'configs'>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of spec.envFrom) {
    const config = desired.configs.find((c) => c.name === from.config && c.namespace === spec.namespace);
    for (const [key, value] of Object.entries(config?.data ?? {})) env[`${from.prefix}${key}`] = value;
  }
  return { ...env, ...spec.env };
}

function entryOf(
  desired: Pick<DesiredState, 'configs' | 'secrets'>,
  kind: 'configs' | 'secrets',
  namespace: string,
  source: string,
  key: string,
): string {
  const item = desired[kind].find((c) => c.name === source && c.namespace === namespace);
  return item?.data[key] ?? '';
}

export function summariseService(
  spec: ServiceSpec,
  desired: Pick<DesiredState, 'configs' | 'secrets'>,
): SpecSummary {
  return {
    image: spec.image,
    command: spec.command,
    args: spec.args,
    env: sortKeys(resolveEnv(spec, desired)),
    ports: spec.ports.map((p) => ({ target: p.target, protocol: p.protocol })),
    configs: spec.configs.map((m) => ({
      target: m.target,
      source: m.source,
      key: m.key,
      mode: m.mode,
      digest: sha256Hex(entryOf(desired, 'configs', spec.namespace, m.source, m.key)).slice(0, 16),
    })),
    secrets: spec.secrets.map((m) => ({
      target: m.target,
      source: m.source,
      key: m.key,
      mode: m.mode,
      uid: m.uid,
      gid: m.gid,
      // A digest of the ciphertext, never of the plaintext: nothing about the value leaks.
      digest: sha256Hex(entryOf(desired, 'secrets', spec.namespace, m.source, m.key)).slice(0, 16),
    })),
    healthcheck: spec.healthcheck,
    limits: spec.resources.limits,
    restart: spec.restart,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    user: spec.user,
    ...(spec.readOnlyRootFilesystem ? { readOnlyRootFilesystem: true as const } : {}),
    ...(spec.capabilities.drop.length + spec.capabilities.add.length > 0
      ? { capabilities: spec.capabilities }
      : {}),
    workingDir: spec.workingDir,
    init: spec.init,
    ...(spec.volumes.length > 0
      ? { volumes: spec.volumes.map((v) => ({ name: v.name, target: v.target, readOnly: v.readOnly })) }
      : {}),
    ...(spec.tmpfs.length > 0 ? { tmpfs: spec.tmpfs } : {}),
    ...(spec.volumeReclaim === 'delete' ? { volumeReclaim: 'delete' as const } : {}),
  };
}

/** JSON with object keys sorted at every level, so equal values always hash equal. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function specHashOf(summary: SpecSummary): string {
  return sha256Hex(canonicalJson(summary));
}
