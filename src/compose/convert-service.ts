/**
 * One compose service as a berth Service: each field through its handler, in an order that
 * matches compose's precedence (env_file before environment, restart before deploy), and every
 * field without a handler reported with the reason it has no berth form.
 */
import type { FieldPath } from '../manifests/field-path.js';
import type { WrittenService } from '../manifests/types.js';
import { isRecord } from './compose-project.js';
import { dnsLabelOf, type Conversion, type FieldHandler, type ServiceDraft } from './conversion.js';
import { deploy, healthcheck, legacyResource } from './service-deploy.js';
import { expose, networks, ports } from './service-network.js';
import * as runtime from './service-runtime.js';
import { configsOf, secretsOf, tmpfs, volumes, type StorageReferences } from './service-storage.js';

const HOST_ACCESS = 'it hands the host to whoever can commit to the repository, so berth has no such field';

/** Fields with no berth form, and why. */
const UNSUPPORTED: Record<string, string> = {
  privileged: `privileged containers are never run: ${HOST_ACCESS}`,
  devices: `host devices are not given to containers: ${HOST_ACCESS}`,
  pid: `sharing the host's or another container's PID namespace: ${HOST_ACCESS}`,
  ipc: `sharing the host's or another container's IPC namespace: ${HOST_ACCESS}`,
  userns_mode: `changing the user namespace: ${HOST_ACCESS}`,
  cgroup_parent: `placing containers in a host cgroup: ${HOST_ACCESS}`,
  security_opt: `berth sets the security options itself (no-new-privileges on every container)`,
  sysctls: 'kernel parameters per container have no berth field',
  ulimits: 'ulimits have no berth field (the engine defaults apply)',
  extra_hosts: 'berth has no /etc/hosts entries; services reach each other by name through service discovery',
  dns: 'berth sets the resolver of its containers (service discovery)',
  dns_search: 'berth sets the resolver of its containers (service discovery)',
  dns_opt: 'berth sets the resolver of its containers (service discovery)',
  links: 'services reach each other by name through service discovery; links are not needed',
  external_links: 'containers outside berth are not reachable by name',
  container_name: 'berth names each replica itself (service, slot and spec hash)',
  hostname: 'berth sets each replica hostname itself',
  domainname: 'berth sets each replica hostname itself',
  mac_address: 'replicas get addresses from berth’s network',
  logging: 'berth leaves logging to the engine’s default driver',
  stdin_open: 'replicas run detached without a terminal',
  tty: 'replicas run detached without a terminal',
  shm_size: 'no berth field for /dev/shm size',
  pids_limit: 'no berth field for a PID limit',
  oom_score_adj: 'no berth field for OOM tuning',
  oom_kill_disable: 'no berth field for OOM tuning',
  memswap_limit: 'no berth field for swap (resources.limits.memory only)',
  mem_swappiness: 'no berth field for swap (resources.limits.memory only)',
  cpu_shares: 'berth takes CPUs as resources.limits.cpus / reservations.cpus',
  cpu_quota: 'berth takes CPUs as resources.limits.cpus / reservations.cpus',
  cpu_period: 'berth takes CPUs as resources.limits.cpus / reservations.cpus',
  cpuset: 'no berth field for pinning CPUs',
  volumes_from: 'a berth Service mounts named volumes itself; volumes_from has no form',
  stop_signal: 'berth stops replicas with SIGTERM, then SIGKILL after stopGracePeriod',
  platform: 'berth runs the image the node’s engine pulls for its own platform',
  pull_policy: 'berth pulls an image when the node does not have it',
  extends: 'extends is not resolved by berth import: flatten it (docker compose config) first',
  runtime: 'no berth field for the container runtime',
  gpus: `GPUs are host devices: ${HOST_ACCESS}`,
  group_add: 'no berth field for supplementary groups',
  isolation: 'no berth field for isolation',
  storage_opt: 'no berth field for storage options',
  annotations: 'no berth field for annotations',
  attach: 'berth does not attach to replicas',
  develop: 'compose watch (develop) is for local development',
  post_start: 'no berth lifecycle hooks',
  pre_stop: 'no berth lifecycle hooks',
  blkio_config: 'no berth field for block IO limits',
};

const NETWORK_MODE: Record<string, string> = {
  host: `host networking: ${HOST_ACCESS}; replicas use berth's network and publish ports through the routing mesh`,
};

export function convertService(
  composeName: string,
  raw: unknown,
  conv: Conversion,
  references: StorageReferences,
): Promise<ServiceDraft | null> {
  const path: FieldPath = ['services', composeName];
  if (!isRecord(raw)) {
    conv.fail(path, 'must be a mapping');
    return Promise.resolve(null);
  }
  return convertFields(composeName, raw, conv, references, path);
}

async function convertFields(
  composeName: string,
  raw: Record<string, unknown>,
  conv: Conversion,
  references: StorageReferences,
  path: FieldPath,
): Promise<ServiceDraft | null> {
  const draft: ServiceDraft = { composeName, path, spec: { image: '' }, labels: {} };
  const handlers: [string, FieldHandler][] = [
    ['image', runtime.image],
    ['build', runtime.build],
    ['entrypoint', runtime.entrypoint],
    ['command', runtime.command],
    ['env_file', runtime.envFile],
    ['environment', runtime.environment],
    ['ports', ports],
    ['expose', expose],
    ['networks', networks],
    ['restart', runtime.restart],
    ['cpus', legacyResource('limits', 'cpus')],
    ['mem_limit', legacyResource('limits', 'memory')],
    ['mem_reservation', legacyResource('reservations', 'memory')],
    ['deploy', deploy],
    ['healthcheck', healthcheck],
    ['configs', configsOf(references)],
    ['secrets', secretsOf(references)],
    ['volumes', volumes],
    ['tmpfs', tmpfs],
    ['user', runtime.user],
    ['working_dir', runtime.workingDir],
    ['init', runtime.init],
    ['read_only', runtime.readOnly],
    ['stop_grace_period', runtime.stopGracePeriod],
    ['cap_add', runtime.capAdd],
    ['cap_drop', runtime.capDrop],
    ['labels', runtime.labels],
    ['depends_on', dependsOn],
    ['scale', scale],
    ['network_mode', networkMode],
  ];
  const handled = new Set(handlers.map(([key]) => key));
  for (const [key, handler] of handlers) {
    if (raw[key] !== undefined && raw[key] !== null) await handler(raw[key], [...path, key], draft, conv);
  }
  for (const key of Object.keys(raw)) {
    if (handled.has(key) || key.startsWith('x-') || key === 'profiles') continue;
    conv.warn([...path, key], `not converted: ${UNSUPPORTED[key] ?? 'not a field berth import knows'}`);
  }
  if (draft.spec.image === '') {
    conv.fail(path, 'has neither image nor build');
    return null;
  }
  return draft;
}

/** berth starts every service at once and has no ordering between them yet. */
const dependsOn: FieldHandler = (value, field, _draft, conv) => {
  const names = Array.isArray(value) ? value.map(String) : isRecord(value) ? Object.keys(value) : [];
  conv.warn(
    field,
    `berth starts services without order (no depends_on yet): this service must retry until ${names.join(', ')} ${names.length === 1 ? 'answers' : 'answer'}; its healthcheck gates its own rollout only`,
  );
};

const scale: FieldHandler = (value, field, draft, conv) => {
  if (Number.isInteger(value)) draft.spec.replicas = value as number;
  else conv.warn(field, 'must be a whole number; not converted');
};

const networkMode: FieldHandler = (value, field, _draft, conv) => {
  const mode = String(value);
  if (mode === 'bridge' || mode === 'default') return;
  conv.warn(
    field,
    `not converted: ${NETWORK_MODE[mode] ?? `network_mode ${mode}: berth replicas use berth's network only`}`,
  );
};

/** The Service manifest of a converted draft. */
export function serviceManifest(
  draft: ServiceDraft,
  name: string,
  namespace: string | undefined,
): WrittenService {
  const labels = Object.keys(draft.labels).length > 0 ? { labels: draft.labels } : {};
  return {
    apiVersion: 'berth/v1',
    kind: 'Service',
    metadata: { name, ...(namespace === undefined ? {} : { namespace }), ...labels },
    spec: draft.spec,
  };
}

export { dnsLabelOf };
