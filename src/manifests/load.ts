/**
 * Loading manifests: files -> DesiredState, or every problem found, each with `file:line:col`.
 *   1. parse     (parse.ts)           YAML with positions; size, encoding and alias-bomb guards
 *   2. schema    (schema.ts)          each document against the JSON Schema of its kind
 *   3. rules     (cross-reference.ts) references, uniqueness, clashes across manifests
 *   4. normalise (normalise.ts)       defaults applied, units converted
 * A step's problems never stop the others from running on what is still sound, so one run reports
 * everything that can be known.
 */
import { checkCrossReferences, KnownManifests, type CheckedManifest } from './cross-reference.js';
import { DEFAULT_NAMESPACE, MAX_MANIFEST_FILE_BYTES } from './defaults.js';
import { didYouMean } from './did-you-mean.js';
import { atFieldPath } from './field-path.js';
import { isManifestPath, type ManifestFile } from './manifest-files.js';
import {
  normaliseConfig,
  normaliseCronJob,
  normaliseJob,
  normaliseNamespace,
  normaliseNotifier,
  normaliseSecret,
  normaliseService,
} from './normalise.js';
import { parseManifestFile, type ParsedDocument } from './parse.js';
import { validateManifestSchema } from './schema.js';
import {
  API_VERSION,
  type DesiredState,
  type CronJobSpec,
  type JobSpec,
  type LoadResult,
  type ManifestKind,
  type ManifestProblem,
  type NotifierSpec,
  type WrittenManifest,
} from './types.js';

export {
  isManifestPath,
  readManifestFilesFromDir,
  type ManifestFile,
  type ReadManifestFilesOptions,
} from './manifest-files.js';

export interface LoadOptions {
  /** Commit id (or content id) the files were read at; becomes DesiredState.revision. */
  revision: string;
  /** Per-file size limit; default MAX_MANIFEST_FILE_BYTES (1 MiB). */
  maxFileBytes?: number;
}

const KINDS: readonly ManifestKind[] = [
  'Service',
  'Job',
  'CronJob',
  'Config',
  'Secret',
  'Namespace',
  'Notifier',
];

/** Pure: no I/O. Files that are not manifests (see isManifestPath) are ignored. */
export function loadManifests(files: readonly ManifestFile[], options: LoadOptions): LoadResult {
  const maxFileBytes = options.maxFileBytes ?? MAX_MANIFEST_FILE_BYTES;
  const problems: ManifestProblem[] = [];
  const known = new KnownManifests();
  const candidates: { kind: ManifestKind; document: ParsedDocument }[] = [];

  for (const file of [...files].sort((a, b) => compareText(a.path, b.path))) {
    if (!isManifestPath(file.path)) continue;
    const parsed = parseManifestFile(file, maxFileBytes);
    problems.push(...parsed.problems);
    for (const document of parsed.documents) {
      // A document with YAML errors is only mined for names; its other problems would be echoes.
      const kind = identifyKind(document, document.hasYamlErrors ? [] : problems);
      if (kind === null) continue;
      recoverOctalFileModes(document);
      learnNames(known, kind, document.value);
      if (!document.hasYamlErrors) candidates.push({ kind, document });
    }
  }

  const checked: CheckedManifest[] = [];
  for (const { kind, document } of candidates) {
    const violations = validateManifestSchema(kind, document.value);
    for (const violation of violations) {
      const { line, col } = document.locate(violation.path, violation.at);
      problems.push({ file: document.file, line, col, message: violation.message });
    }
    if (violations.length === 0) checked.push({ manifest: document.value as WrittenManifest, document });
  }
  problems.push(...checkCrossReferences(checked, known));

  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  return { ok: true, desired: buildDesiredState(checked, options.revision) };
}

/** Problems in reading order: by file, then line, then column. */
export function sortProblems(problems: readonly ManifestProblem[]): ManifestProblem[] {
  return [...problems].sort(
    (a, b) =>
      compareText(a.file, b.file) || a.line - b.line || a.col - b.col || compareText(a.message, b.message),
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** apiVersion and kind decide which schema applies, so they are checked first, and by hand. */
function identifyKind(document: ParsedDocument, problems: ManifestProblem[]): ManifestKind | null {
  const report = (path: string[], at: 'key' | 'value', message: string): null => {
    const { line, col } = document.locate(path, at);
    problems.push({ file: document.file, line, col, message: atFieldPath(path, message) });
    return null;
  };
  const value = document.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return report(
      [],
      'value',
      `a manifest must be a mapping with apiVersion, kind and metadata, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`,
    );
  }
  const { apiVersion, kind } = value as Record<string, unknown>;
  const kinds = KINDS.join(', ');
  if (apiVersion === undefined) {
    report([], 'key', `missing required field "apiVersion" (expected ${JSON.stringify(API_VERSION)})`);
  } else if (apiVersion !== API_VERSION) {
    // Probably another tool's YAML (Kubernetes, Compose) in the manifest tree: its fields would
    // only produce noise, so this is the one problem reported for the document.
    return report(
      ['apiVersion'],
      'value',
      `must be ${JSON.stringify(API_VERSION)}, got ${JSON.stringify(apiVersion)}`,
    );
  }
  if (kind === undefined) return report([], 'key', `missing required field "kind" (one of ${kinds})`);
  if (typeof kind !== 'string' || !KINDS.includes(kind as ManifestKind)) {
    const suggestion = typeof kind === 'string' ? didYouMean(kind, KINDS) : '';
    const hint = suggestion === '' ? ` (expected one of ${kinds})` : suggestion;
    return report(['kind'], 'value', `unknown kind ${JSON.stringify(kind)}${hint}`);
  }
  return apiVersion === undefined ? null : (kind as ManifestKind);
}

/**
 * YAML 1.2 reads `mode: 0444` as the decimal number 444, not the octal chmod mode everyone means
 * (and Compose, on YAML 1.1, reads it as). The written text is recovered so it is taken as octal.
 */
function recoverOctalFileModes(document: ParsedDocument): void {
  const spec = (document.value as { spec?: unknown }).spec;
  if (typeof spec !== 'object' || spec === null) return;
  for (const list of ['configs', 'secrets'] as const) {
    const mounts = (spec as Record<string, unknown>)[list];
    if (!Array.isArray(mounts)) continue;
    mounts.forEach((mount: unknown, index) => {
      if (typeof mount !== 'object' || mount === null) return;
      const record = mount as Record<string, unknown>;
      if (typeof record['mode'] !== 'number') return;
      const source = document.scalarSource(['spec', list, index, 'mode']);
      if (source !== undefined && /^0[0-9]+$/.test(source)) record['mode'] = source;
    });
  }
}

function learnNames(known: KnownManifests, kind: ManifestKind, value: unknown): void {
  const { metadata, data } = value as { metadata?: unknown; data?: unknown };
  if (typeof metadata !== 'object' || metadata === null) return;
  const { name, namespace } = metadata as { name?: unknown; namespace?: unknown };
  if (typeof name !== 'string') return;
  const keys = typeof data === 'object' && data !== null ? Object.keys(data) : null;
  known.add(kind, typeof namespace === 'string' ? namespace : DEFAULT_NAMESPACE, name, keys);
}

function buildDesiredState(checked: readonly CheckedManifest[], revision: string): DesiredState {
  const jobs: JobSpec[] = [];
  const cronJobs: CronJobSpec[] = [];
  const desired: DesiredState & { notifiers: NotifierSpec[] } = {
    revision,
    services: [],
    jobs,
    cronJobs,
    configs: [],
    secrets: [],
    namespaces: [],
    notifiers: [],
  };
  for (const { manifest, document } of checked) {
    switch (manifest.kind) {
      case 'Service':
        desired.services.push(normaliseService(manifest));
        break;
      case 'Job':
        jobs.push(normaliseJob(manifest));
        break;
      case 'CronJob':
        cronJobs.push(normaliseCronJob(manifest));
        break;
      case 'Config':
        desired.configs.push(normaliseConfig(manifest));
        break;
      case 'Secret':
        desired.secrets.push({ ...normaliseSecret(manifest), file: document.file });
        break;
      case 'Namespace':
        desired.namespaces.push(normaliseNamespace(manifest));
        break;
      case 'Notifier':
        desired.notifiers.push(normaliseNotifier(manifest));
        break;
    }
  }
  const byScopedName = (
    a: { namespace: string; name: string },
    b: { namespace: string; name: string },
  ): number => compareText(a.namespace, b.namespace) || compareText(a.name, b.name);
  desired.services.sort(byScopedName);
  jobs.sort(byScopedName);
  cronJobs.sort(byScopedName);
  desired.configs.sort(byScopedName);
  desired.secrets.sort(byScopedName);
  desired.notifiers.sort(byScopedName);
  desired.namespaces.sort((a, b) => compareText(a.name, b.name));
  return desired;
}
