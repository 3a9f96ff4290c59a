/**
 * `deploy:` (replicas, mode, resources, placement, update/rollback, restart policy), the legacy
 * resource fields, and `healthcheck:`. Swarm designed deploy and berth follows Swarm, so most of
 * it maps one to one; what does not is said.
 */
import type { FieldPath } from '../manifests/field-path.js';
import type { WrittenUpdatePolicy } from '../manifests/types.js';
import { composeCpus, composeDuration, composeMemory, scalarText } from './compose-values.js';
import { isRecord, keyValueMap } from './compose-project.js';
import type { Conversion, FieldHandler, ServiceDraft } from './conversion.js';

const CONSTRAINT = /^\s*node\.(labels\.[A-Za-z0-9._/-]+|hostname)\s*(==|!=)\s*([^\s=!]+)\s*$/;

export const deploy: FieldHandler = (value, field, draft, conv) => {
  if (!isRecord(value)) return;
  for (const [key, item] of Object.entries(value)) {
    const at = [...field, key];
    switch (key) {
      case 'replicas':
        if (Number.isInteger(item) && (item as number) >= 0) draft.spec.replicas = item as number;
        else conv.warn(at, 'must be a whole number; not converted');
        break;
      case 'mode':
        if (item === 'global' || item === 'replicated') draft.spec.mode = item;
        else conv.warn(at, `${String(item)} has no berth form (jobs are not supported); runs as replicated`);
        break;
      case 'resources':
        resources(item, at, draft, conv);
        break;
      case 'placement':
        placement(item, at, draft, conv);
        break;
      case 'update_config':
        draft.spec.update = updatePolicy(item, at, conv, false);
        break;
      case 'rollback_config':
        draft.spec.rollback = updatePolicy(item, at, conv, true);
        break;
      case 'restart_policy':
        restartPolicy(item, at, draft, conv);
        break;
      case 'labels':
        Object.assign(
          draft.labels,
          Object.fromEntries(Object.entries(keyValueMap(item)).map(([k, v]) => [k, scalarText(v)])),
        );
        break;
      case 'endpoint_mode':
        conv.warn(
          at,
          'berth balances through its routing mesh and service discovery; endpoint_mode is not converted',
        );
        break;
      default:
        conv.warn(at, 'no berth equivalent; not converted');
    }
  }
  if (draft.spec.mode === 'global' && draft.spec.replicas !== undefined) {
    conv.warn([...field, 'replicas'], 'ignored with mode: global (one replica per eligible node)');
    delete draft.spec.replicas;
  }
};

function resources(value: unknown, field: FieldPath, draft: ServiceDraft, conv: Conversion): void {
  if (!isRecord(value)) return;
  for (const [kind, amounts] of Object.entries(value)) {
    if ((kind !== 'limits' && kind !== 'reservations') || !isRecord(amounts)) {
      conv.warn([...field, kind], 'no berth equivalent; not converted');
      continue;
    }
    for (const [name, amount] of Object.entries(amounts)) {
      const at = [...field, kind, name];
      const target = ((draft.spec.resources ??= {})[kind] ??= {});
      if (name === 'cpus') {
        const cpus = composeCpus(amount);
        if (cpus === null) conv.warn(at, `not a number of CPUs: ${JSON.stringify(amount)}; not converted`);
        else target.cpus = cpus;
      } else if (name === 'memory') {
        const memory = composeMemory(amount);
        if (memory === null) conv.warn(at, `not a memory size: ${JSON.stringify(amount)}; not converted`);
        else target.memory = memory;
      } else {
        conv.warn(
          at,
          name === 'devices'
            ? 'devices (GPUs) reach the host; berth does not give them to containers'
            : 'no berth equivalent; not converted',
        );
      }
    }
  }
}

/** `cpus`, `mem_limit`, `mem_reservation` at service level: compose's shorthands for resources. */
export const legacyResource =
  (kind: 'limits' | 'reservations', name: 'cpus' | 'memory'): FieldHandler =>
  (value, field, draft, conv) => {
    const amount = name === 'cpus' ? composeCpus(value) : composeMemory(value);
    if (amount === null)
      conv.warn(field, `not a ${name === 'cpus' ? 'number of CPUs' : 'memory size'}; not converted`);
    else ((draft.spec.resources ??= {})[kind] ??= {})[name] = amount as never;
  };

function placement(value: unknown, field: FieldPath, draft: ServiceDraft, conv: Conversion): void {
  if (!isRecord(value)) return;
  const spec = (draft.spec.placement ??= {});
  for (const [index, constraint] of (Array.isArray(value['constraints'])
    ? value['constraints']
    : []
  ).entries()) {
    const match = CONSTRAINT.exec(String(constraint));
    if (match === null) {
      conv.warn(
        [...field, 'constraints', index],
        'berth places by node.labels.KEY, node.name and node.hostname with == or != (no node.role, node.id, node.platform or engine labels); not converted',
      );
    } else (spec.constraints ??= []).push(`node.${match[1]} ${match[2]} ${match[3]}`);
  }
  for (const [index, preference] of (Array.isArray(value['preferences'])
    ? value['preferences']
    : []
  ).entries()) {
    const spread = isRecord(preference) ? preference['spread'] : undefined;
    if (
      typeof spread === 'string' &&
      /^node\.labels\.[A-Za-z0-9._/-]+$/.test(spread) &&
      spec.spread === undefined
    ) {
      spec.spread = spread;
    } else {
      conv.warn(
        [...field, 'preferences', index],
        'berth spreads over one node label (the first spread preference); not converted',
      );
    }
  }
  if (value['max_replicas_per_node'] !== undefined) spec.maxPerNode = Number(value['max_replicas_per_node']);
  for (const key of Object.keys(value)) {
    if (!['constraints', 'preferences', 'max_replicas_per_node'].includes(key))
      conv.warn([...field, key], 'no berth equivalent; not converted');
  }
}

function updatePolicy(
  value: unknown,
  field: FieldPath,
  conv: Conversion,
  rollback: boolean,
): WrittenUpdatePolicy {
  const policy: WrittenUpdatePolicy = {};
  if (!isRecord(value)) return policy;
  for (const [key, item] of Object.entries(value)) {
    const at = [...field, key];
    if (key === 'parallelism' && Number.isInteger(item)) policy.parallelism = item as number;
    else if (key === 'delay' || key === 'monitor') {
      const duration = composeDuration(item);
      if (duration === null) conv.warn(at, 'not a duration; not converted');
      else policy[key] = duration;
    } else if (key === 'max_failure_ratio') policy.maxFailureRatio = Number(item);
    else if (key === 'order' && (item === 'start-first' || item === 'stop-first')) policy.order = item;
    else if (
      key === 'failure_action' &&
      (item === 'pause' || item === 'continue' || (item === 'rollback' && !rollback))
    ) {
      policy.failureAction = item;
    } else if (key === 'failure_action' && item === 'rollback') {
      conv.warn(at, 'a rollback cannot roll back; berth pauses it (the default)');
    } else conv.warn(at, 'no berth equivalent; not converted');
  }
  // Swarm (and compose deploy) default to stop-first; berth to start-first. Said, not changed.
  if (!rollback && policy.order === undefined) {
    conv.warn(
      [...field],
      'docker defaults to order: stop-first; berth to start-first (capacity never drops), and to stop-first for a service with volumes: set order if the service cannot run twice at once',
    );
  }
  return policy;
}

function restartPolicy(value: unknown, field: FieldPath, draft: ServiceDraft, conv: Conversion): void {
  if (!isRecord(value)) return;
  const restart: NonNullable<ServiceDraft['spec']['restart']> = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === 'condition' && (item === 'any' || item === 'on-failure' || item === 'none'))
      restart.condition = item;
    else if (key === 'max_attempts' && Number.isInteger(item)) restart.maxAttempts = item as number;
    else
      conv.warn(
        [...field, key],
        key === 'delay' || key === 'window'
          ? 'berth backs off restarts itself; not converted'
          : 'no berth equivalent; not converted',
      );
  }
  draft.spec.restart = restart;
}

/** Docker's healthcheck defaults (interval and timeout 30s), since berth's are Kubernetes' (10s, 1s). */
const DOCKER_HEALTHCHECK_DEFAULTS = { interval: '30s', timeout: '30s' };

export const healthcheck: FieldHandler = (value, field, draft, conv) => {
  if (!isRecord(value)) return;
  if (value['disable'] === true) return;
  const test = value['test'];
  let exec: string[] | null = null;
  if (typeof test === 'string') exec = ['/bin/sh', '-c', test];
  else if (Array.isArray(test) && test[0] === 'CMD' && test.length > 1) exec = test.slice(1).map(String);
  else if (Array.isArray(test) && test[0] === 'CMD-SHELL' && test.length === 2)
    exec = ['/bin/sh', '-c', String(test[1])];
  else if (Array.isArray(test) && test[0] === 'NONE') return;
  else {
    conv.warn(
      [...field, 'test'],
      test === undefined
        ? "berth does not run the image's own HEALTHCHECK; write a test to keep the check"
        : 'must be CMD, CMD-SHELL or NONE; not converted',
    );
    return;
  }
  const check: NonNullable<ServiceDraft['spec']['healthcheck']> = { exec, ...DOCKER_HEALTHCHECK_DEFAULTS };
  for (const key of ['interval', 'timeout', 'start_period'] as const) {
    if (value[key] === undefined) continue;
    const duration = composeDuration(value[key]);
    if (duration === null) conv.warn([...field, key], 'not a duration; not converted');
    else check[key === 'start_period' ? 'startPeriod' : key] = duration;
  }
  if (Number.isInteger(value['retries']) && (value['retries'] as number) >= 1)
    check.retries = Math.min(value['retries'] as number, 100);
  for (const key of Object.keys(value)) {
    if (!['test', 'interval', 'timeout', 'retries', 'start_period', 'disable'].includes(key)) {
      conv.warn([...field, key], 'no berth equivalent; not converted');
    }
  }
  draft.spec.healthcheck = check;
};
