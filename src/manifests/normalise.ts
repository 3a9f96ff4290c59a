/**
 * Step 4 of loading: Written* (what the user wrote, already schema-valid) -> *Spec (every default
 * applied, durations in ms, sizes in bytes, CPUs in nano-CPUs, constraints parsed). Pure.
 */
import { parsePlacementConstraint } from './constraints.js';
import {
  DEFAULT_CONFIG_FILE_MODE,
  DEFAULT_CRONJOB_CONCURRENCY_POLICY,
  DEFAULT_CRONJOB_FAILED_HISTORY_LIMIT,
  DEFAULT_CRONJOB_SUCCESSFUL_HISTORY_LIMIT,
  DEFAULT_CRONJOB_SUSPEND,
  DEFAULT_CRONJOB_TIME_ZONE,
  DEFAULT_ENV_FROM_PREFIX,
  DEFAULT_HEALTHCHECK_TIMING,
  DEFAULT_HTTP_EXPECT_STATUS,
  DEFAULT_HTTP_PROBE_PATH,
  DEFAULT_INIT,
  DEFAULT_JOB_BACKOFF_LIMIT,
  DEFAULT_JOB_COMPLETIONS,
  DEFAULT_JOB_PARALLELISM,
  DEFAULT_JOB_TTL_AFTER_FINISHED_MS,
  JOB_RESTART,
  DEFAULT_MAX_PER_NODE,
  DEFAULT_MODE,
  DEFAULT_NAMESPACE,
  DEFAULT_NOTIFIER_EVENTS,
  DEFAULT_APP_PROTOCOL,
  DEFAULT_CAPABILITIES,
  DEFAULT_PORT_PROTOCOL,
  DEFAULT_READ_ONLY_ROOT_FILESYSTEM,
  DEFAULT_REPLICAS,
  DEFAULT_RESTART,
  DEFAULT_ROLLBACK_POLICY,
  DEFAULT_SECRET_FILE_MODE,
  DEFAULT_SPREAD,
  DEFAULT_STOP_GRACE_PERIOD_MS,
  DEFAULT_UPDATE_POLICY,
  GLOBAL_MODE_REPLICAS,
  UNSET_RESOURCES,
  DEFAULT_VOLUME_DRIVER,
  DEFAULT_VOLUME_RECLAIM,
  defaultSecretOwner,
  defaultUpdateOrder,
  defaultSecretTarget,
} from './defaults.js';
import { cpusToNanoCpus, parseDuration, parseFileMode, parseMemorySize } from './units.js';
import type {
  ConfigSpec,
  CronJobSpec,
  HealthcheckSpec,
  HealthProbe,
  JobSpec,
  NamespaceSpec,
  NotifierSpec,
  PlacementConstraint,
  ResourceSpec,
  SecretSpec,
  ServiceSpec,
  TmpfsMountSpec,
  UpdatePolicySpec,
  VolumeMountSpec,
  WrittenConfig,
  WrittenCronJob,
  WrittenHealthcheck,
  WrittenJob,
  WrittenNamespace,
  WrittenNotifier,
  WrittenSecret,
  WrittenService,
  WrittenUpdatePolicy,
} from './types.js';

type WrittenSpec = WrittenService['spec'];

export function normaliseService(written: WrittenService): ServiceSpec {
  const spec = written.spec;
  const mode = spec.mode ?? DEFAULT_MODE;
  return {
    kind: 'Service',
    name: written.metadata.name,
    namespace: written.metadata.namespace ?? DEFAULT_NAMESPACE,
    labels: { ...written.metadata.labels },
    image: spec.image,
    command: spec.command ? [...spec.command] : null,
    args: spec.args ? [...spec.args] : null,
    env: Object.fromEntries(Object.entries(spec.env ?? {}).map(([name, value]) => [name, String(value)])),
    envFrom: (spec.envFrom ?? []).map((source) => ({
      config: source.config,
      prefix: source.prefix ?? DEFAULT_ENV_FROM_PREFIX,
    })),
    mode,
    replicas: mode === 'global' ? GLOBAL_MODE_REPLICAS : (spec.replicas ?? DEFAULT_REPLICAS),
    ports: (spec.ports ?? []).map((port) => ({
      target: port.target,
      published: port.published ?? null,
      protocol: port.protocol ?? DEFAULT_PORT_PROTOCOL,
      appProtocol: port.appProtocol ?? DEFAULT_APP_PROTOCOL,
    })),
    configs: (spec.configs ?? []).map((mount) => ({
      source: mount.source,
      key: mount.key,
      target: mount.target,
      mode: mount.mode === undefined ? DEFAULT_CONFIG_FILE_MODE : fileMode(mount.mode),
    })),
    secrets: (spec.secrets ?? []).map((mount) => ({
      source: mount.source,
      key: mount.key,
      target: mount.target ?? defaultSecretTarget(mount.source, mount.key),
      mode: mount.mode === undefined ? DEFAULT_SECRET_FILE_MODE : fileMode(mount.mode),
      uid: mount.uid ?? defaultSecretOwner(spec.user).uid,
      gid: mount.gid ?? defaultSecretOwner(spec.user).gid,
    })),
    healthcheck: spec.healthcheck ? normaliseHealthcheck(spec.healthcheck) : null,
    resources: {
      limits: normaliseResources(spec.resources?.limits),
      reservations: normaliseResources(spec.resources?.reservations),
    },
    placement: {
      constraints: (spec.placement?.constraints ?? []).map(placementConstraint),
      spread: spec.placement?.spread ?? DEFAULT_SPREAD,
      maxPerNode: spec.placement?.maxPerNode ?? DEFAULT_MAX_PER_NODE,
    },
    update: normaliseUpdatePolicy(spec.update, withVolumeOrder(DEFAULT_UPDATE_POLICY, spec)),
    rollback: normaliseUpdatePolicy(spec.rollback, withVolumeOrder(DEFAULT_ROLLBACK_POLICY, spec)),
    restart: {
      condition: spec.restart?.condition ?? DEFAULT_RESTART.condition,
      maxAttempts: spec.restart?.maxAttempts ?? DEFAULT_RESTART.maxAttempts,
    },
    stopGracePeriodMs: optionalDuration(spec.stopGracePeriod, DEFAULT_STOP_GRACE_PERIOD_MS),
    user: spec.user ?? null,
    readOnlyRootFilesystem: spec.readOnlyRootFilesystem ?? DEFAULT_READ_ONLY_ROOT_FILESYSTEM,
    capabilities: {
      drop: [...(spec.capabilities?.drop ?? DEFAULT_CAPABILITIES.drop)],
      add: [...(spec.capabilities?.add ?? DEFAULT_CAPABILITIES.add)],
    },
    workingDir: spec.workingDir ?? null,
    init: spec.init ?? DEFAULT_INIT,
    volumes: normaliseVolumes(spec.volumes),
    tmpfs: normaliseTmpfs(spec.tmpfs),
    volumeReclaim: spec.volumeReclaim ?? DEFAULT_VOLUME_RECLAIM,
    dependsOn: (spec.dependsOn ?? []).map((dependency) => ({ job: dependency.job })),
  };
}

export function normaliseJob(written: WrittenJob): JobSpec {
  const { completions, parallelism, backoffLimit, activeDeadline, ttlAfterFinished, ...containerFields } =
    written.spec;
  const container = normaliseService({
    apiVersion: written.apiVersion,
    kind: 'Service',
    metadata: written.metadata,
    spec: { ...containerFields, replicas: 1, restart: { ...JOB_RESTART } },
  });
  return {
    kind: 'Job',
    name: container.name,
    namespace: container.namespace,
    labels: container.labels,
    container,
    completions: completions ?? DEFAULT_JOB_COMPLETIONS,
    parallelism: parallelism ?? DEFAULT_JOB_PARALLELISM,
    backoffLimit: backoffLimit ?? DEFAULT_JOB_BACKOFF_LIMIT,
    activeDeadlineMs: activeDeadline === undefined ? null : optionalDuration(activeDeadline, 0),
    ttlAfterFinishedMs: optionalDuration(ttlAfterFinished, DEFAULT_JOB_TTL_AFTER_FINISHED_MS),
  };
}

export function normaliseCronJob(written: WrittenCronJob): CronJobSpec {
  const { spec } = written;
  const jobTemplate = normaliseJob({
    apiVersion: written.apiVersion,
    kind: 'Job',
    metadata: written.metadata,
    spec: spec.jobTemplate,
  });
  return {
    kind: 'CronJob',
    name: jobTemplate.name,
    namespace: jobTemplate.namespace,
    labels: jobTemplate.labels,
    schedule: spec.schedule,
    timeZone: spec.timeZone ?? DEFAULT_CRONJOB_TIME_ZONE,
    concurrencyPolicy: spec.concurrencyPolicy ?? DEFAULT_CRONJOB_CONCURRENCY_POLICY,
    startingDeadlineMs:
      spec.startingDeadline === undefined ? null : optionalDuration(spec.startingDeadline, 0),
    successfulJobsHistoryLimit: spec.successfulJobsHistoryLimit ?? DEFAULT_CRONJOB_SUCCESSFUL_HISTORY_LIMIT,
    failedJobsHistoryLimit: spec.failedJobsHistoryLimit ?? DEFAULT_CRONJOB_FAILED_HISTORY_LIMIT,
    suspend: spec.suspend ?? DEFAULT_CRONJOB_SUSPEND,
    jobTemplate,
  };
}

function withVolumeOrder(defaults: Readonly<UpdatePolicySpec>, spec: WrittenSpec): UpdatePolicySpec {
  return { ...defaults, order: defaultUpdateOrder((spec.volumes ?? []).length > 0) };
}

function normaliseVolumes(written: WrittenSpec['volumes']): VolumeMountSpec[] {
  return (written ?? []).map((volume) => ({
    name: volume.name,
    target: volume.target,
    readOnly: volume.readOnly ?? false,
    driver: volume.driver ?? DEFAULT_VOLUME_DRIVER,
    driverOptions: { ...volume.driverOptions },
  }));
}

function normaliseTmpfs(written: WrittenSpec['tmpfs']): TmpfsMountSpec[] {
  return (written ?? []).map((mount) => ({
    target: mount.target,
    sizeBytes: mount.size === undefined ? 0 : memorySize(mount.size),
  }));
}

export function normaliseHealthcheck(written: WrittenHealthcheck): HealthcheckSpec {
  return {
    probe: healthProbe(written),
    intervalMs: optionalDuration(written.interval, DEFAULT_HEALTHCHECK_TIMING.intervalMs),
    timeoutMs: optionalDuration(written.timeout, DEFAULT_HEALTHCHECK_TIMING.timeoutMs),
    retries: written.retries ?? DEFAULT_HEALTHCHECK_TIMING.retries,
    startPeriodMs: optionalDuration(written.startPeriod, DEFAULT_HEALTHCHECK_TIMING.startPeriodMs),
  };
}

function healthProbe(written: WrittenHealthcheck): HealthProbe {
  if (written.http) {
    const probe: HealthProbe = {
      type: 'http',
      port: written.http.port,
      path: written.http.path ?? DEFAULT_HTTP_PROBE_PATH,
      expectStatus: [...(written.http.expectStatus ?? DEFAULT_HTTP_EXPECT_STATUS)],
    };
    if (written.http.host !== undefined) probe.host = written.http.host;
    return probe;
  }
  if (written.tcp) return { type: 'tcp', port: written.tcp.port };
  if (written.exec) return { type: 'exec', command: [...written.exec] };
  throw new Error('healthcheck has none of http, tcp, exec; the schema should have refused it');
}

export function normaliseUpdatePolicy(
  written: WrittenUpdatePolicy | undefined,
  defaults: Readonly<UpdatePolicySpec>,
): UpdatePolicySpec {
  return {
    parallelism: written?.parallelism ?? defaults.parallelism,
    delayMs: optionalDuration(written?.delay, defaults.delayMs),
    order: written?.order ?? defaults.order,
    monitorMs: optionalDuration(written?.monitor, defaults.monitorMs),
    failureAction: written?.failureAction ?? defaults.failureAction,
    maxFailureRatio: written?.maxFailureRatio ?? defaults.maxFailureRatio,
    progressDeadlineMs: optionalDuration(written?.progressDeadline, defaults.progressDeadlineMs),
  };
}

type WrittenResources = NonNullable<WrittenSpec['resources']>['limits'];

function normaliseResources(written: WrittenResources): ResourceSpec {
  return {
    nanoCpus: written?.cpus === undefined ? UNSET_RESOURCES.nanoCpus : cpusToNanoCpus(written.cpus),
    memoryBytes: written?.memory === undefined ? UNSET_RESOURCES.memoryBytes : memorySize(written.memory),
  };
}

export function normaliseConfig(written: WrittenConfig): ConfigSpec {
  return {
    kind: 'Config',
    name: written.metadata.name,
    namespace: written.metadata.namespace ?? DEFAULT_NAMESPACE,
    data: { ...written.data },
  };
}

export function normaliseSecret(written: WrittenSecret): SecretSpec {
  return {
    kind: 'Secret',
    name: written.metadata.name,
    namespace: written.metadata.namespace ?? DEFAULT_NAMESPACE,
    data: { ...written.data },
  };
}

export function normaliseNamespace(written: WrittenNamespace): NamespaceSpec {
  return { kind: 'Namespace', name: written.metadata.name, labels: { ...written.metadata.labels } };
}

export function normaliseNotifier(written: WrittenNotifier): NotifierSpec {
  const { spec } = written;
  return {
    kind: 'Notifier',
    name: written.metadata.name,
    namespace: written.metadata.namespace ?? DEFAULT_NAMESPACE,
    type: spec.type,
    urlFrom: { secret: spec.urlFrom.secret, key: spec.urlFrom.key },
    events: [...(spec.events ?? DEFAULT_NOTIFIER_EVENTS)],
  };
}

// The schema has already accepted these values, so a parse failure here is a bug, not bad input.

function optionalDuration(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  return required(parseDuration(text), `duration ${JSON.stringify(text)}`);
}

function memorySize(value: string | number): number {
  return required(parseMemorySize(value), `memory size ${JSON.stringify(value)}`);
}

function fileMode(value: string | number): number {
  return required(parseFileMode(value), `file mode ${JSON.stringify(value)}`);
}

function placementConstraint(text: string): PlacementConstraint {
  return required(parsePlacementConstraint(text), `placement constraint ${JSON.stringify(text)}`);
}

function required<T>(value: T | null, what: string): T {
  if (value === null)
    throw new Error(`${what} passed the schema but does not parse; schema and parser disagree`);
  return value;
}
