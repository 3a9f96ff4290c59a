/**
 * Manifest types. Three layers, never mixed:
 * - `Written*`: what the user wrote, as the JSON Schema allows it (optional fields, strings for
 *   durations and sizes). Produced by parsing + schema validation.
 * - `*Spec`: the normalised form: every default applied (see defaults.ts), durations in ms, sizes
 *   in bytes, CPUs in nano-CPUs. This is what the planner and the agents work with.
 * - Observed state lives in src/api/types.ts.
 */

import type { ALL_CAPABILITIES, AddableCapability, LinuxCapability } from './linux-capabilities.js';

export const API_VERSION = 'berth/v1';
export type ManifestKind = 'Service' | 'Job' | 'CronJob' | 'Config' | 'Secret' | 'Namespace' | 'Notifier';

/** Where a manifest came from, for error messages (`file:line:col`). */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export interface WrittenMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export interface WrittenHealthcheck {
  http?: { port: number; path?: string; host?: string; expectStatus?: number[] };
  tcp?: { port: number };
  exec?: string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  startPeriod?: string;
}

export interface WrittenUpdatePolicy {
  parallelism?: number;
  delay?: string;
  order?: 'start-first' | 'stop-first';
  monitor?: string;
  failureAction?: 'rollback' | 'pause' | 'continue';
  maxFailureRatio?: number;
  progressDeadline?: string;
}

export interface WrittenService {
  apiVersion: typeof API_VERSION;
  kind: 'Service';
  metadata: WrittenMetadata;
  spec: {
    image: string;
    command?: string[];
    args?: string[];
    env?: Record<string, string | number | boolean>;
    envFrom?: { config: string; prefix?: string }[];
    replicas?: number;
    mode?: 'replicated' | 'global';
    ports?: { target: number; published?: number; protocol?: 'tcp' | 'udp'; appProtocol?: 'tcp' | 'http' }[];
    configs?: { source: string; key: string; target: string; mode?: number | string }[];
    secrets?: {
      source: string;
      key: string;
      target?: string;
      mode?: number | string;
      uid?: number;
      gid?: number;
    }[];
    healthcheck?: WrittenHealthcheck;
    resources?: {
      limits?: { cpus?: number; memory?: string | number };
      reservations?: { cpus?: number; memory?: string | number };
    };
    placement?: { constraints?: string[]; spread?: string; maxPerNode?: number };
    update?: WrittenUpdatePolicy;
    rollback?: WrittenUpdatePolicy;
    restart?: { condition?: 'any' | 'on-failure' | 'none'; maxAttempts?: number };
    stopGracePeriod?: string;
    user?: string;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: (LinuxCapability | typeof ALL_CAPABILITIES)[]; add?: AddableCapability[] };
    workingDir?: string;
    init?: boolean;
    volumes?: {
      name: string;
      target: string;
      readOnly?: boolean;
      driver?: string;
      driverOptions?: Record<string, string>;
    }[];
    tmpfs?: { target: string; size?: string | number }[];
    volumeReclaim?: VolumeReclaim;
    dependsOn?: { job: string }[];
  };
}

/** The fields of a Service spec that describe its container, which a Job shares. */
export type WrittenContainerFields = Pick<
  WrittenService['spec'],
  | 'image'
  | 'command'
  | 'args'
  | 'env'
  | 'envFrom'
  | 'configs'
  | 'secrets'
  | 'resources'
  | 'placement'
  | 'stopGracePeriod'
  | 'user'
  | 'readOnlyRootFilesystem'
  | 'capabilities'
  | 'workingDir'
  | 'init'
>;

export interface WrittenJob {
  apiVersion: typeof API_VERSION;
  kind: 'Job';
  metadata: WrittenMetadata;
  spec: WrittenContainerFields & {
    completions?: number;
    parallelism?: number;
    backoffLimit?: number;
    activeDeadline?: string;
    ttlAfterFinished?: string;
  };
}

export type ConcurrencyPolicy = 'Allow' | 'Forbid' | 'Replace';

export interface WrittenCronJob {
  apiVersion: typeof API_VERSION;
  kind: 'CronJob';
  metadata: WrittenMetadata;
  spec: {
    schedule: string;
    timeZone?: string;
    concurrencyPolicy?: ConcurrencyPolicy;
    startingDeadline?: string;
    successfulJobsHistoryLimit?: number;
    failedJobsHistoryLimit?: number;
    suspend?: boolean;
    jobTemplate: WrittenJob['spec'];
  };
}

export interface WrittenConfig {
  apiVersion: typeof API_VERSION;
  kind: 'Config';
  metadata: WrittenMetadata;
  data: Record<string, string>;
}

export interface WrittenSecret {
  apiVersion: typeof API_VERSION;
  kind: 'Secret';
  metadata: WrittenMetadata;
  /** Every value is an age-encrypted payload in ASCII armor. */
  data: Record<string, string>;
}

export interface WrittenNamespace {
  apiVersion: typeof API_VERSION;
  kind: 'Namespace';
  metadata: { name: string; labels?: Record<string, string> };
}

/** What a Notifier can be told of (docs/notifications.md). */
export type NotifierEvent = 'deployed' | 'rolled-back' | 'failed' | 'invalid' | 'node-down' | 'job-failed';
export type NotifierType = 'webhook' | 'slack' | 'discord' | 'msteams';

export interface WrittenNotifier {
  apiVersion: typeof API_VERSION;
  kind: 'Notifier';
  metadata: WrittenMetadata;
  spec: {
    type: NotifierType;
    urlFrom: { secret: string; key: string };
    events?: NotifierEvent[];
  };
}

export type WrittenManifest =
  | WrittenService
  | WrittenJob
  | WrittenCronJob
  | WrittenConfig
  | WrittenSecret
  | WrittenNamespace
  | WrittenNotifier;

/** A manifest document together with where it was found. */
export interface LocatedManifest<T extends WrittenManifest = WrittenManifest> {
  manifest: T;
  location: SourceLocation;
}

// ---------------------------------------------------------------------------------------------
// Normalised specs

export type HealthProbe =
  | {
      type: 'http';
      port: number;
      path: string;
      /**
       * Statuses counted as healthy. Empty means Kubernetes's rule, any status from 200 to 399
       * (see isHealthyHttpStatus in health-status.ts); a list names the accepted codes exactly.
       */
      expectStatus: number[];
      /** Host header for the probe; absent: none is set beyond the address probed. */
      host?: string;
    }
  | { type: 'tcp'; port: number }
  | { type: 'exec'; command: string[] };

export interface HealthcheckSpec {
  probe: HealthProbe;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface UpdatePolicySpec {
  parallelism: number;
  delayMs: number;
  order: 'start-first' | 'stop-first';
  monitorMs: number;
  failureAction: 'rollback' | 'pause' | 'continue';
  maxFailureRatio: number;
  progressDeadlineMs: number;
}

export interface ResourceSpec {
  /** 1 CPU = 1e9 nano-CPUs, as the Docker API counts them. 0 = unset. */
  nanoCpus: number;
  memoryBytes: number;
}

export interface PortSpec {
  target: number;
  published: number | null;
  protocol: 'tcp' | 'udp';
  /** How the mesh balances it: per connection (tcp) or per HTTP request (http). */
  appProtocol: 'tcp' | 'http';
}

export interface FileMountSpec {
  source: string;
  key: string;
  target: string;
  mode: number;
}

export interface SecretMountSpec extends FileMountSpec {
  uid: number;
  gid: number;
}

/** Kubernetes' persistentVolumeReclaimPolicy, lower-case: what removing the Service does to its volumes. */
export type VolumeReclaim = 'retain' | 'delete';

/** A named volume every replica mounts; the Docker volume itself is per slot (see volumeName()). */
export interface VolumeMountSpec {
  name: string;
  target: string;
  readOnly: boolean;
  driver: string;
  driverOptions: Record<string, string>;
}

export interface TmpfsMountSpec {
  target: string;
  /** 0: Docker's default size. */
  sizeBytes: number;
}

export interface ServiceSpec {
  kind: 'Service';
  name: string;
  namespace: string;
  labels: Record<string, string>;
  image: string;
  command: string[] | null;
  args: string[] | null;
  env: Record<string, string>;
  envFrom: { config: string; prefix: string }[];
  mode: 'replicated' | 'global';
  /** For `mode: global` this is 0 and the count follows the eligible nodes. */
  replicas: number;
  ports: PortSpec[];
  configs: FileMountSpec[];
  secrets: SecretMountSpec[];
  healthcheck: HealthcheckSpec | null;
  resources: { limits: ResourceSpec; reservations: ResourceSpec };
  placement: { constraints: PlacementConstraint[]; spread: string | null; maxPerNode: number };
  update: UpdatePolicySpec;
  rollback: UpdatePolicySpec;
  restart: { condition: 'any' | 'on-failure' | 'none'; maxAttempts: number };
  stopGracePeriodMs: number;
  user: string | null;
  readOnlyRootFilesystem: boolean;
  capabilities: CapabilitiesSpec;
  workingDir: string | null;
  init: boolean;
  volumes: VolumeMountSpec[];
  tmpfs: TmpfsMountSpec[];
  volumeReclaim: VolumeReclaim;
  /**
   * Jobs of the same namespace that must have succeeded at this revision before it rolls. Always
   * set by normaliseService; optional only so specs built by hand (tests, benchmarks) need not.
   */
  dependsOn?: { job: string }[];
}

export interface JobSpec {
  kind: 'Job';
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /**
   * The container, as a one-replica Service without ports, health check or restarts: the same
   * normalisation, the same request to the agents.
   */
  container: ServiceSpec;
  completions: number;
  parallelism: number;
  /** Failed runs retried; one more failure fails the Job. */
  backoffLimit: number;
  /** null: no deadline. */
  activeDeadlineMs: number | null;
  ttlAfterFinishedMs: number;
  /** Set on the Job of a CronJob's run: the CronJob (its containers are labelled berth.cronjob). */
  cronJob?: string;
}

export interface CronJobSpec {
  kind: 'CronJob';
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** node-cron syntax, validated. */
  schedule: string;
  /** IANA name, validated. */
  timeZone: string;
  concurrencyPolicy: ConcurrencyPolicy;
  /** A run later than this after its scheduled time is skipped (recorded as missed); null: never too late. */
  startingDeadlineMs: number | null;
  successfulJobsHistoryLimit: number;
  failedJobsHistoryLimit: number;
  suspend: boolean;
  /** What each run runs: a Job named after the CronJob (each run gets its own name, see cronRunName()). */
  jobTemplate: JobSpec;
}

/** Docker's default set, minus `drop` (`ALL`: every one), plus `add` (only ADDABLE_CAPABILITIES). */
export interface CapabilitiesSpec {
  drop: (LinuxCapability | typeof ALL_CAPABILITIES)[];
  add: AddableCapability[];
}

export interface PlacementConstraint {
  /** e.g. `node.labels.zone`, `node.name`, `node.hostname`. */
  field: string;
  op: '==' | '!=';
  value: string;
}

export interface ConfigSpec {
  kind: 'Config';
  name: string;
  namespace: string;
  data: Record<string, string>;
}

export interface SecretSpec {
  kind: 'Secret';
  name: string;
  namespace: string;
  /** Still encrypted: ASCII-armored age payloads. Decrypted only on delivery. */
  data: Record<string, string>;
  /** The manifest file it was read from (relative to the manifest path), for error messages. */
  file?: string;
}

export interface NamespaceSpec {
  kind: 'Namespace';
  name: string;
  labels: Record<string, string>;
}

export interface NotifierSpec {
  kind: 'Notifier';
  name: string;
  namespace: string;
  type: NotifierType;
  /** A Secret of the same namespace and its key holding the URL; the URL itself is read only to send. */
  urlFrom: { secret: string; key: string };
  events: NotifierEvent[];
}

/** Everything a revision of the repository asks for. */
export interface DesiredState {
  /** Full commit id the manifests were read at (or a content id for a plain directory). */
  revision: string;
  services: ServiceSpec[];
  /** Always set by loadManifests; optional only so states built by hand need not. */
  jobs?: JobSpec[];
  /** Always set by loadManifests; optional only so states built by hand need not. */
  cronJobs?: CronJobSpec[];
  configs: ConfigSpec[];
  secrets: SecretSpec[];
  namespaces: NamespaceSpec[];
  /** Absent in desired states built by code that predates Notifiers (saved plans, tests): none. */
  notifiers?: NotifierSpec[];
}

/** One problem found while loading manifests. Validation returns all of them as data. */
export interface ManifestProblem {
  file: string;
  line: number;
  col: number;
  message: string;
}

export type LoadResult = { ok: true; desired: DesiredState } | { ok: false; problems: ManifestProblem[] };
