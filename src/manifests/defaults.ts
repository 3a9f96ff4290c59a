/**
 * Every default berth applies to a manifest, in one place. Each is anchored to the orchestrator it
 * follows (Swarm, Kubernetes, Nomad, Docker) and, where berth deliberately differs, says why.
 * The JSON Schemas in schemas/ carry the same values as `default` (written form) so editors can
 * show them; defaults.test.ts checks the two agree.
 */
import type { HealthcheckSpec, NotifierEvent, ResourceSpec, ServiceSpec, UpdatePolicySpec } from './types.js';

// ---------------------------------------------------------------------------------------------
// Loading limits

/** Largest manifest file read (1 MiB). Bigger files are refused: manifests are small, and this
 *  bounds the memory a hostile or accidental file (a committed dump, a log) can take. */
export const MAX_MANIFEST_FILE_BYTES = 1024 * 1024;

/** YAML aliases a document may expand (yaml's own default). Bounds "billion laughs" expansion: past
 *  this the document is refused instead of being expanded exponentially. */
export const MAX_YAML_ALIAS_COUNT = 100;

/** File extensions read as manifests; every other file under the manifest root is ignored. */
export const MANIFEST_EXTENSIONS = ['.yaml', '.yml'] as const;

// ---------------------------------------------------------------------------------------------
// Metadata

/** Kubernetes: objects without a namespace live in "default", which always exists. */
export const DEFAULT_NAMESPACE = 'default';

// ---------------------------------------------------------------------------------------------
// Notifier

/** A Notifier that names no events hears of all of them (Flux's Alert with `eventSeverity: info` does):
 *  the six are few and each is rare, so the default is the useful one, not a silent channel. */
export const DEFAULT_NOTIFIER_EVENTS: readonly NotifierEvent[] = [
  'deployed',
  'rolled-back',
  'failed',
  'invalid',
  'node-down',
  'job-failed',
];

// ---------------------------------------------------------------------------------------------
// Service

/** Swarm and Kubernetes both run one replica unless told otherwise. */
export const DEFAULT_REPLICAS = 1;

/** Swarm: services are replicated unless `mode: global`. A global service's spec carries replicas 0;
 *  the count follows the eligible nodes. */
export const DEFAULT_MODE: ServiceSpec['mode'] = 'replicated';
export const GLOBAL_MODE_REPLICAS = 0;

/** Docker: a published port is TCP unless it says udp. */
export const DEFAULT_PORT_PROTOCOL = 'tcp' as const;

/** The mesh balances connections unless a port says it speaks HTTP. */
export const DEFAULT_APP_PROTOCOL = 'tcp' as const;

/** Kubernetes envFrom: no prefix, the Config's keys are the variable names. */
export const DEFAULT_ENV_FROM_PREFIX = '';

/**
 * Update policy.
 * - parallelism 1: Swarm `update_config.parallelism` (one replica at a time).
 * - delay 0s: Swarm `update_config.delay`.
 * - order start-first: Kubernetes' rolling update with maxUnavailable 0 / maxSurge 1: capacity never
 *   drops. Swarm defaults to stop-first; berth differs on purpose, zero downtime is its promise.
 * - monitor 5s: Swarm `update_config.monitor`.
 * - failureAction rollback: Nomad `auto_revert`. Swarm defaults to pause, which leaves a half-updated
 *   service behind; berth's promise is that a bad commit never takes down what runs.
 * - maxFailureRatio 0: Swarm `update_config.max_failure_ratio`.
 * - progressDeadline 10m: Kubernetes `progressDeadlineSeconds: 600`.
 */
export const DEFAULT_UPDATE_POLICY: Readonly<UpdatePolicySpec> = Object.freeze({
  parallelism: 1,
  delayMs: 0,
  order: 'start-first',
  monitorMs: 5_000,
  failureAction: 'rollback',
  maxFailureRatio: 0,
  progressDeadlineMs: 600_000,
});

/** Rollback policy: the update defaults (Swarm's rollback_config mirrors update_config), except that
 *  a failing rollback pauses: rolling back a rollback would loop. */
export const DEFAULT_ROLLBACK_POLICY: Readonly<UpdatePolicySpec> = Object.freeze({
  ...DEFAULT_UPDATE_POLICY,
  failureAction: 'pause',
});

/**
 * Health check timing.
 * - interval 10s: Kubernetes `periodSeconds` (Docker's 30s is slow for health-gated rollouts).
 * - timeout 1s: Kubernetes `timeoutSeconds`.
 * - retries 3: Docker `--health-retries` and Kubernetes `failureThreshold`.
 * - startPeriod 0s: Docker `--health-start-period`.
 */
export const DEFAULT_HEALTHCHECK_TIMING: Readonly<Omit<HealthcheckSpec, 'probe'>> = Object.freeze({
  intervalMs: 10_000,
  timeoutMs: 1_000,
  retries: 3,
  startPeriodMs: 0,
});

/** Kubernetes httpGet: path "/" ... */
export const DEFAULT_HTTP_PROBE_PATH = '/';
/** ... and any status from 200 to 399 is success. Written as an empty `expectStatus` list. */
export const DEFAULT_HTTP_EXPECT_STATUS: readonly number[] = Object.freeze([]);
export const HTTP_HEALTHY_STATUS_RANGE = Object.freeze({ min: 200, max: 399 });

/** Docker: 0 CPUs and 0 bytes mean "not set" (no limit, nothing reserved). */
export const UNSET_RESOURCES: Readonly<ResourceSpec> = Object.freeze({ nanoCpus: 0, memoryBytes: 0 });

/** Docker refuses memory limits under 6 MiB ("Minimum memory limit allowed is 6MB"). */
export const MIN_MEMORY_LIMIT_BYTES = 6 * 1024 * 1024;

/** Swarm placement: no spread preference, and max_replicas_per_node 0 means unlimited. */
export const DEFAULT_SPREAD = null;
export const DEFAULT_MAX_PER_NODE = 0;

/** Swarm `restart_policy`: condition any, max_attempts 0 (unlimited). */
export const DEFAULT_RESTART: Readonly<ServiceSpec['restart']> = Object.freeze({
  condition: 'any',
  maxAttempts: 0,
});

/** Docker `stop --time` and Swarm `stop_grace_period`: 10s between SIGTERM and SIGKILL. */
export const DEFAULT_STOP_GRACE_PERIOD_MS = 10_000;

/** Docker `--init` is off by default. */
export const DEFAULT_INIT = false;

// ---------------------------------------------------------------------------------------------
// Volumes

/** Docker's own default driver: a directory on the node. */
export const DEFAULT_VOLUME_DRIVER = 'local';

/** Kubernetes' Retain: removing a Service from git never takes its data with it unless it says so. */
export const DEFAULT_VOLUME_RECLAIM = 'retain' as const;

/**
 * A service with volumes updates stop-first: start-first would run the new replica beside the old
 * one on the same volume, two writers on one data directory (Swarm's default order; Kubernetes
 * StatefulSets also replace a pod only after the old one has gone). Without volumes, start-first.
 */
export function defaultUpdateOrder(hasVolumes: boolean): UpdatePolicySpec['order'] {
  return hasVolumes ? 'stop-first' : DEFAULT_UPDATE_POLICY.order;
}

/**
 * The Docker volume of one slot: `berth.<namespace>.<service>.<volume>.<slot>`, one per slot as
 * Kubernetes StatefulSet volume claim templates make one claim per pod. The slot is its number (a
 * global service's slot is its node's name), so scaling keeps every slot's data and a slot's
 * replacement finds its predecessor's volume. Dots cannot occur in namespaces, services or volume
 * names (DNS labels), so the name is unambiguous.
 */
export function volumeName(namespace: string, service: string, volume: string, slot: string): string {
  return `berth.${namespace}.${service}.${volume}.${slot}`;
}

// ---------------------------------------------------------------------------------------------
// Container security

/**
 * Every container runs with `no-new-privileges` (Docker's `--security-opt no-new-privileges`; on
 * by default in Podman, off in Docker): a setuid binary in the image cannot raise the privileges of
 * the process that runs it. Not a manifest field: no service needs setuid to gain privileges.
 */
export const NO_NEW_PRIVILEGES = true;

/** Docker and Kubernetes: the root filesystem is writable unless told otherwise. */
export const DEFAULT_READ_ONLY_ROOT_FILESYSTEM = false;

/** Docker's default capability set, neither narrowed nor widened. */
export const DEFAULT_CAPABILITIES: Readonly<ServiceSpec['capabilities']> = Object.freeze({
  drop: [],
  add: [],
});

/**
 * A read-only root filesystem leaves most programs no place for temporary files: berth mounts a
 * small tmpfs at /tmp, unless the service mounts a tmpfs or a volume there itself. Docker's own `--tmpfs`
 * flags (noexec, nosuid, nodev), world-writable with the sticky bit as /tmp always is, and 64 MiB
 * (tmpfs pages count against the container's memory limit) so it cannot fill the node's memory.
 */
export const READ_ONLY_ROOT_TMPFS = Object.freeze({
  target: '/tmp',
  options: 'rw,noexec,nosuid,nodev,mode=1777,size=64m',
});

// ---------------------------------------------------------------------------------------------
// Files from Configs and Secrets

/** Swarm configs are mounted 0444: world-readable, nobody writes. */
export const DEFAULT_CONFIG_FILE_MODE = 0o444;

/** Swarm secrets default to 0444; berth uses 0400 (owner only), as a secret should be. */
export const DEFAULT_SECRET_FILE_MODE = 0o400;

/** Swarm: secret files belong to uid 0, gid 0. */
export const DEFAULT_SECRET_UID = 0;
export const DEFAULT_SECRET_GID = 0;

/**
 * A 0400 file owned by root is unreadable to a container that runs as another user, so a numeric
 * `user: UID[:GID]` makes the secret files its own by default (gid 0 without GID, the group Docker
 * gives a uid the image does not know). A user name cannot be resolved without the image's
 * /etc/passwd: Swarm's 0:0 then.
 */
export function defaultSecretOwner(user: string | undefined): { uid: number; gid: number } {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user ?? '');
  if (!numeric) return { uid: DEFAULT_SECRET_UID, gid: DEFAULT_SECRET_GID };
  return {
    uid: Number(numeric[1]),
    gid: numeric[2] === undefined ? DEFAULT_SECRET_GID : Number(numeric[2]),
  };
}

/**
 * Swarm mounts a secret at /run/secrets/<name>. A berth Secret holds several keys, so each key gets
 * /run/secrets/<source>/<key> (the layout of a Kubernetes secret volume). Joining with "-" instead
 * could make two different (source, key) pairs collide ("a-b"+"c" and "a"+"b-c").
 */
export function defaultSecretTarget(source: string, key: string): string {
  return `/run/secrets/${source}/${key}`;
}

// ---------------------------------------------------------------------------------------------
// Job

/** Kubernetes Job: one successful run, one at a time, 6 retries. */
export const DEFAULT_JOB_COMPLETIONS = 1;
export const DEFAULT_JOB_PARALLELISM = 1;
export const DEFAULT_JOB_BACKOFF_LIMIT = 6;

/** Kubernetes' back-off between failed runs: 10 s, doubled after each failure, at most 6 min. */
export const JOB_BACKOFF_BASE_MS = 10_000;
export const JOB_BACKOFF_MAX_MS = 6 * 60_000;

/** Finished run containers stay a day for their logs (Kubernetes has no default: they stay). */
export const DEFAULT_JOB_TTL_AFTER_FINISHED_MS = 24 * 60 * 60_000;

// ---------------------------------------------------------------------------------------------
// CronJob

/** Kubernetes CronJob keeps 3 successful and 1 failed run. */
export const DEFAULT_CRONJOB_SUCCESSFUL_HISTORY_LIMIT = 3;
export const DEFAULT_CRONJOB_FAILED_HISTORY_LIMIT = 1;
/** Kubernetes defaults to UTC when timeZone is unset (the controller's zone, UTC in practice). */
export const DEFAULT_CRONJOB_TIME_ZONE = 'UTC';
/**
 * Kubernetes defaults to Allow; berth to Forbid, the long-standing complaint being backups and
 * reports that pile up when one run outlasts the interval. Opting into overlap is explicit.
 */
export const DEFAULT_CRONJOB_CONCURRENCY_POLICY = 'Forbid';
export const DEFAULT_CRONJOB_SUSPEND = false;

/** A Job's container never restarts in place: a failed run is retried as a new run, counted. */
export const JOB_RESTART: Readonly<ServiceSpec['restart']> = Object.freeze({
  condition: 'none',
  maxAttempts: 0,
});
