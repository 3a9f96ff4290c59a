/**
 * Step 3 of loading: rules that span fields or manifests, which a JSON Schema cannot say: references
 * to Configs, Secrets and Namespaces exist, names are unique, mount targets and ports do not clash,
 * resource amounts make sense together. Runs on schema-valid manifests only.
 */
import { BERTH_DEFAULT_PORTS } from '../core/berth-ports.js';
import { DEFAULT_NAMESPACE, MIN_MEMORY_LIMIT_BYTES, defaultSecretTarget } from './defaults.js';
import { cronExpressionProblem, isKnownTimeZone } from './cron-schedule.js';
import { closestName, didYouMean } from './did-you-mean.js';
import { atFieldPath, formatFieldPath, type FieldPath } from './field-path.js';
import type { ParsedDocument, Position } from './parse.js';
import type {
  ManifestKind,
  ManifestProblem,
  WrittenCronJob,
  WrittenManifest,
  WrittenNotifier,
  WrittenService,
} from './types.js';
import { cpusToNanoCpus, formatMemorySize, parseMemorySize } from './units.js';

/** A schema-valid manifest and the document it came from. */
export interface CheckedManifest<T extends WrittenManifest = WrittenManifest> {
  manifest: T;
  document: ParsedDocument;
}

/**
 * Names (and keys) of every manifest that could be identified, including ones with YAML or schema
 * errors of their own: a reference to a broken Config is that Config's problem, not a dangling one.
 */
export class KnownManifests {
  private readonly keysByObject = new Map<string, Set<string> | null>();
  private readonly namespaces = new Set<string>([DEFAULT_NAMESPACE]);

  add(kind: ManifestKind, namespace: string, name: string, keys: Iterable<string> | null): void {
    if (kind === 'Namespace') {
      this.namespaces.add(name);
      return;
    }
    const id = objectId(kind, namespace, name);
    const existing = this.keysByObject.get(id);
    if (existing === undefined) {
      this.keysByObject.set(id, keys === null ? null : new Set(keys));
    } else if (existing !== null && keys !== null) {
      for (const key of keys) existing.add(key);
    }
  }

  hasNamespace(name: string): boolean {
    return this.namespaces.has(name);
  }

  namespaceNames(): string[] {
    return [...this.namespaces];
  }

  /** undefined: no such object; null: it exists but its keys could not be read. */
  keysOf(kind: 'Config' | 'Secret', namespace: string, name: string): ReadonlySet<string> | null | undefined {
    return this.keysByObject.get(objectId(kind, namespace, name));
  }

  hasJob(namespace: string, name: string): boolean {
    return this.keysByObject.has(objectId('Job', namespace, name));
  }

  namesOf(kind: 'Config' | 'Secret' | 'Job', namespace: string): string[] {
    const prefix = objectId(kind, namespace, '');
    return [...this.keysByObject.keys()]
      .filter((id) => id.startsWith(prefix))
      .map((id) => id.slice(prefix.length));
  }
}

function objectId(kind: ManifestKind, namespace: string, name: string): string {
  return `${kind}\u0000${namespace}\u0000${name}`;
}

export function checkCrossReferences(
  manifests: readonly CheckedManifest[],
  known: KnownManifests,
): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const report = (
    checked: CheckedManifest,
    path: FieldPath,
    message: string,
    at: 'key' | 'value' = 'value',
  ): void => {
    const { line, col } = checked.document.locate(path, at);
    problems.push({ file: checked.document.file, line, col, message: atFieldPath(path, message) });
  };

  checkUniqueNames(manifests, report);
  for (const checked of manifests) {
    const { manifest } = checked;
    if (manifest.kind !== 'Namespace') {
      const namespace = manifest.metadata.namespace ?? DEFAULT_NAMESPACE;
      if (!known.hasNamespace(namespace)) {
        report(
          checked,
          ['metadata', 'namespace'],
          `namespace ${JSON.stringify(namespace)} does not exist; add a Namespace manifest named ${JSON.stringify(namespace)}${didYouMean(namespace, known.namespaceNames())}`,
        );
      }
    }
    if (manifest.kind === 'Service' || manifest.kind === 'Job') {
      // A Job's container fields are a Service's, at the same paths: the same rules hold.
      const service = asContainerOwner(checked);
      if (manifest.kind === 'Service') checkJobDependencies(service, known, report);
      checkContainer(service, known, report);
    }
    if (manifest.kind === 'CronJob') {
      const cronJob = checked as CheckedManifest<WrittenCronJob>;
      checkSchedule(cronJob, report);
      // The template's container fields sit under spec.jobTemplate: the same rules, paths moved.
      checkContainer(asTemplateOwner(cronJob), known, (_, path, message, at) =>
        report(checked, ['spec', 'jobTemplate', ...path.slice(1)], message, at),
      );
    }
    if (manifest.kind === 'Notifier')
      checkNotifierUrl(checked as CheckedManifest<WrittenNotifier>, known, report);
  }
  checkPublishedPorts(manifests, report);
  return problems;
}

function checkContainer(
  service: CheckedManifest<WrittenService>,
  known: KnownManifests,
  report: Report,
): void {
  checkReferences(service, known, report);
  checkMountTargets(service, report);
  checkTargetPorts(service, report);
  checkResources(service, report);
  checkCapabilities(service, report);
  checkVolumeNames(service, report);
}

/** Kubernetes' limit: each run is named `<name>-<time>`, which must stay a DNS label (63). */
const MAX_CRONJOB_NAME_LENGTH = 52;

function checkSchedule(checked: CheckedManifest<WrittenCronJob>, report: Report): void {
  const { schedule, timeZone } = checked.manifest.spec;
  if (checked.manifest.metadata.name.length > MAX_CRONJOB_NAME_LENGTH) {
    report(
      checked,
      ['metadata', 'name'],
      `a CronJob name is at most ${MAX_CRONJOB_NAME_LENGTH} characters (its runs are named <name>-<time>)`,
    );
  }
  const problem = cronExpressionProblem(schedule);
  if (problem !== null) {
    report(
      checked,
      ['spec', 'schedule'],
      `${JSON.stringify(schedule)} is not a valid schedule (${problem}); node-cron syntax: "minute hour day-of-month month day-of-week", an optional leading seconds field`,
    );
  }
  if (timeZone !== undefined && !isKnownTimeZone(timeZone)) {
    report(
      checked,
      ['spec', 'timeZone'],
      `unknown time zone ${JSON.stringify(timeZone)}; use an IANA name such as "Europe/Paris" or "America/New_York"`,
    );
  }
}

function asTemplateOwner(checked: CheckedManifest<WrittenCronJob>): CheckedManifest<WrittenService> {
  const { metadata, spec } = checked.manifest;
  const manifest: WrittenService = {
    apiVersion: checked.manifest.apiVersion,
    kind: 'Service',
    metadata,
    spec: { ...spec.jobTemplate },
  };
  return { ...checked, manifest };
}

function asContainerOwner(checked: CheckedManifest): CheckedManifest<WrittenService> {
  if (checked.manifest.kind !== 'Job') return checked as CheckedManifest<WrittenService>;
  const job = checked.manifest;
  return { ...checked, manifest: { ...job, kind: 'Service', spec: { ...job.spec } } };
}

function checkJobDependencies(
  checked: CheckedManifest<WrittenService>,
  known: KnownManifests,
  report: Report,
): void {
  const { spec, metadata } = checked.manifest;
  const namespace = metadata.namespace ?? DEFAULT_NAMESPACE;
  (spec.dependsOn ?? []).forEach((dependency, index) => {
    if (known.hasJob(namespace, dependency.job)) return;
    report(
      checked,
      ['spec', 'dependsOn', index, 'job'],
      `Job ${JSON.stringify(dependency.job)} does not exist in namespace ${JSON.stringify(namespace)}${didYouMean(dependency.job, known.namesOf('Job', namespace))}`,
    );
  });
}

type Report = (checked: CheckedManifest, path: FieldPath, message: string, at?: 'key' | 'value') => void;

function where(checked: CheckedManifest, path: FieldPath): string {
  const { line, col }: Position = checked.document.locate(path, 'value');
  return `${checked.document.file}:${line}:${col}`;
}

function checkUniqueNames(manifests: readonly CheckedManifest[], report: Report): void {
  const first = new Map<string, CheckedManifest>();
  for (const checked of manifests) {
    const { manifest } = checked;
    const namespace = manifest.kind === 'Namespace' ? '' : (manifest.metadata.namespace ?? DEFAULT_NAMESPACE);
    const id = objectId(manifest.kind, namespace, manifest.metadata.name);
    const earlier = first.get(id);
    if (earlier === undefined) {
      first.set(id, checked);
      continue;
    }
    const scope = manifest.kind === 'Namespace' ? '' : ` in namespace ${JSON.stringify(namespace)}`;
    report(
      checked,
      ['metadata', 'name'],
      `duplicate ${manifest.kind} ${JSON.stringify(manifest.metadata.name)}${scope} (first defined at ${where(earlier, ['metadata', 'name'])})`,
    );
  }
}

function checkReferences(
  checked: CheckedManifest<WrittenService>,
  known: KnownManifests,
  report: Report,
): void {
  const { spec, metadata } = checked.manifest;
  const namespace = metadata.namespace ?? DEFAULT_NAMESPACE;
  const checkReference = (
    kind: 'Config' | 'Secret',
    path: FieldPath,
    source: string,
    key: string | null,
  ): void => {
    const keys = known.keysOf(kind, namespace, source);
    if (keys === undefined) {
      report(
        checked,
        [...path, kind === 'Config' && key === null ? 'config' : 'source'],
        `${kind} ${JSON.stringify(source)} not found in namespace ${JSON.stringify(namespace)}${didYouMean(source, known.namesOf(kind, namespace))}`,
      );
      return;
    }
    if (keys === null || key === null || keys.has(key)) return;
    report(
      checked,
      [...path, 'key'],
      `${kind} ${JSON.stringify(source)} has no key ${JSON.stringify(key)}${missingKeyHint(key, keys)}`,
    );
  };
  (spec.configs ?? []).forEach((mount, index) =>
    checkReference('Config', ['spec', 'configs', index], mount.source, mount.key),
  );
  (spec.secrets ?? []).forEach((mount, index) =>
    checkReference('Secret', ['spec', 'secrets', index], mount.source, mount.key),
  );
  (spec.envFrom ?? []).forEach((source, index) =>
    checkReference('Config', ['spec', 'envFrom', index], source.config, null),
  );
}

/** The URL's Secret must exist in the Notifier's namespace (a Secret elsewhere is not its team's). */
function checkNotifierUrl(
  checked: CheckedManifest<WrittenNotifier>,
  known: KnownManifests,
  report: Report,
): void {
  const { secret, key } = checked.manifest.spec.urlFrom;
  const namespace = checked.manifest.metadata.namespace ?? DEFAULT_NAMESPACE;
  const keys = known.keysOf('Secret', namespace, secret);
  if (keys === undefined) {
    report(
      checked,
      ['spec', 'urlFrom', 'secret'],
      `Secret ${JSON.stringify(secret)} not found in namespace ${JSON.stringify(namespace)}${didYouMean(secret, known.namesOf('Secret', namespace))}`,
    );
    return;
  }
  if (keys === null || keys.has(key)) return;
  report(
    checked,
    ['spec', 'urlFrom', 'key'],
    `Secret ${JSON.stringify(secret)} has no key ${JSON.stringify(key)}${missingKeyHint(key, keys)}`,
  );
}

/** What to say after "has no key K": the closest key, or the keys there are. */
function missingKeyHint(key: string, keys: ReadonlySet<string>): string {
  const closest = closestName(key, keys);
  if (closest !== null) return ` (did you mean ${JSON.stringify(closest)}?)`;
  return keys.size === 0 ? ' (it has no keys)' : ` (it has ${listKeys(keys)})`;
}

function listKeys(keys: ReadonlySet<string>): string {
  const sorted = [...keys].sort();
  const shown = sorted.slice(0, 10).map((key) => JSON.stringify(key));
  return `${shown.join(', ')}${sorted.length > shown.length ? ', ...' : ''}`;
}

function checkMountTargets(checked: CheckedManifest<WrittenService>, report: Report): void {
  const { spec } = checked.manifest;
  const mounts: { path: FieldPath; target: string; written: boolean }[] = [
    ...(spec.configs ?? []).map((mount, index) => ({
      path: ['spec', 'configs', index],
      target: mount.target,
      written: true,
    })),
    ...(spec.secrets ?? []).map((mount, index) => ({
      path: ['spec', 'secrets', index],
      target: mount.target ?? defaultSecretTarget(mount.source, mount.key),
      written: mount.target !== undefined,
    })),
    ...(spec.volumes ?? []).map((mount, index) => ({
      path: ['spec', 'volumes', index],
      target: mount.target,
      written: true,
    })),
    ...(spec.tmpfs ?? []).map((mount, index) => ({
      path: ['spec', 'tmpfs', index],
      target: mount.target,
      written: true,
    })),
  ];
  const first = new Map<string, FieldPath>();
  for (const mount of mounts) {
    const earlier = first.get(mount.target);
    if (earlier === undefined) {
      first.set(mount.target, mount.path);
      continue;
    }
    const path = mount.written ? [...mount.path, 'target'] : mount.path;
    const implied = mount.written ? '' : ' (the default target)';
    report(
      checked,
      path,
      `target ${JSON.stringify(mount.target)}${implied} is already mounted by ${formatFieldPath(earlier)}`,
    );
  }
}

function checkTargetPorts(checked: CheckedManifest<WrittenService>, report: Report): void {
  const first = new Map<string, number>();
  (checked.manifest.spec.ports ?? []).forEach((port, index) => {
    const id = `${port.target}/${port.protocol ?? 'tcp'}`;
    const earlier = first.get(id);
    if (earlier === undefined) {
      first.set(id, index);
      return;
    }
    report(
      checked,
      ['spec', 'ports', index, 'target'],
      `container port ${id} is already listed at spec.ports[${earlier}]`,
    );
  });
}

function checkPublishedPorts(manifests: readonly CheckedManifest[], report: Report): void {
  const first = new Map<string, { checked: CheckedManifest<WrittenService>; index: number }>();
  for (const checked of manifests) {
    if (checked.manifest.kind !== 'Service') continue;
    const service = checked as CheckedManifest<WrittenService>;
    (service.manifest.spec.ports ?? []).forEach((port, index) => {
      if (port.published === undefined) return;
      const berthPort = BERTH_DEFAULT_PORTS.find((reserved) => reserved.port === port.published);
      if (berthPort !== undefined) {
        report(
          service,
          ['spec', 'ports', index, 'published'],
          `port ${port.published} is ${berthPort.use}; a Service cannot publish the ports berth listens on`,
        );
        return;
      }
      const id = `${port.published}/${port.protocol ?? 'tcp'}`;
      const earlier = first.get(id);
      if (earlier === undefined) {
        first.set(id, { checked: service, index });
        return;
      }
      const owner = earlier.checked.manifest.metadata;
      const same = earlier.checked === service;
      const by = same
        ? `this service at spec.ports[${earlier.index}]`
        : `Service ${owner.namespace ?? DEFAULT_NAMESPACE}/${owner.name} (${where(earlier.checked, ['spec', 'ports', earlier.index, 'published'])})`;
      report(
        service,
        ['spec', 'ports', index, 'published'],
        `port ${id} is already published by ${by}; published ports are unique across the cluster`,
      );
    });
  }
}

function checkResources(checked: CheckedManifest<WrittenService>, report: Report): void {
  const resources = checked.manifest.spec.resources;
  const limits = resources?.limits;
  const reservations = resources?.reservations;
  const limitMemory = limits?.memory === undefined ? 0 : (parseMemorySize(limits.memory) ?? 0);
  const reservedMemory = reservations?.memory === undefined ? 0 : (parseMemorySize(reservations.memory) ?? 0);
  if (limitMemory > 0 && limitMemory < MIN_MEMORY_LIMIT_BYTES) {
    report(
      checked,
      ['spec', 'resources', 'limits', 'memory'],
      `must be at least ${formatMemorySize(MIN_MEMORY_LIMIT_BYTES)} (Docker's minimum memory limit), or 0 for no limit`,
    );
  }
  if (limitMemory > 0 && reservedMemory > limitMemory) {
    report(
      checked,
      ['spec', 'resources', 'reservations', 'memory'],
      `reserves more memory than the limit (${formatMemorySize(reservedMemory)} > ${formatMemorySize(limitMemory)})`,
    );
  }
  const limitCpus = cpusToNanoCpus(limits?.cpus ?? 0);
  const reservedCpus = cpusToNanoCpus(reservations?.cpus ?? 0);
  if (limitCpus > 0 && reservedCpus > limitCpus) {
    report(
      checked,
      ['spec', 'resources', 'reservations', 'cpus'],
      `reserves more CPU than the limit (${reservations?.cpus ?? 0} > ${limits?.cpus ?? 0})`,
    );
  }
}

/** Docker lets `add` win over `drop`; a name in both is a mistake either way. */
function checkCapabilities(checked: CheckedManifest<WrittenService>, report: Report): void {
  const { drop = [], add = [] } = checked.manifest.spec.capabilities ?? {};
  add.forEach((name, index) => {
    if (!(drop as string[]).includes(name)) return;
    report(
      checked,
      ['spec', 'capabilities', 'add', index],
      `${name} is also in capabilities.drop; list it in one of them (drop: [ALL] with add: [${name}] keeps only what add names)`,
    );
  });
}

/** One name, one volume: two entries with the same name would mount one volume twice. */
function checkVolumeNames(checked: CheckedManifest<WrittenService>, report: Report): void {
  const first = new Map<string, number>();
  (checked.manifest.spec.volumes ?? []).forEach((volume, index) => {
    const earlier = first.get(volume.name);
    if (earlier === undefined) {
      first.set(volume.name, index);
      return;
    }
    report(
      checked,
      ['spec', 'volumes', index, 'name'],
      `volume ${JSON.stringify(volume.name)} is already listed at spec.volumes[${earlier}]; mount it once`,
    );
  });
}
