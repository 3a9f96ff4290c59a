/**
 * Where a service keeps files: named volumes, tmpfs, and the configs and secrets it mounts. Host
 * bind mounts have no berth form: a manifest must not reach into a node's filesystem.
 */
import type { FieldPath } from '../manifests/field-path.js';
import { composeMemory, scalarText } from './compose-values.js';
import { isRecord } from './compose-project.js';
import { dnsLabelOf, type Conversion, type FieldHandler, type ServiceDraft } from './conversion.js';

/** A top-level config or secret as a berth manifest name and data key. */
export interface FileReference {
  name: string;
  key: string;
}

export interface StorageReferences {
  configs: Map<string, FileReference>;
  secrets: Map<string, FileReference>;
}

const BIND_SOURCE = /^([./~]|[A-Za-z]:[\\/])/;

export const volumes: FieldHandler = (value, field, draft, conv) => {
  for (const [index, entry] of (Array.isArray(value) ? value : []).entries()) {
    const at = [...field, index];
    const mount = isRecord(entry) ? longVolume(entry) : shortVolume(String(entry));
    if (typeof mount === 'string') {
      conv.warn(at, mount);
      continue;
    }
    if (mount.type === 'tmpfs') {
      addTmpfs(draft, mount.target, mount.size, at, conv);
      continue;
    }
    if (mount.type === 'bind') {
      conv.warn(
        at,
        `host bind mount ${mount.source ?? ''} not converted: a berth Service cannot mount a node's files (use a named volume, or a Config for a file)`,
      );
      continue;
    }
    if (mount.type !== 'volume') {
      conv.warn(at, `${mount.type} mounts have no berth form; not converted`);
      continue;
    }
    if (mount.source === undefined) {
      conv.warn(
        at,
        `anonymous volume at ${mount.target} not converted: give it a name in the top-level volumes so its data is kept`,
      );
      continue;
    }
    namedVolume(mount.source, mount.target, mount.readOnly === true, at, draft, conv);
  }
};

interface Mount {
  type: string;
  target: string;
  source?: string | undefined;
  readOnly?: boolean;
  size?: unknown;
}

function shortVolume(spec: string): Mount | string {
  const parts = spec.split(':');
  if (parts.length === 1) return { type: 'volume', source: undefined, target: spec, readOnly: false };
  // A Windows drive letter source (C:\data:/data) splits once more.
  const source = /^[A-Za-z]$/.test(parts[0] ?? '')
    ? `${parts.shift() ?? ''}:${parts.shift() ?? ''}`
    : (parts.shift() ?? '');
  const [target = '', options = ''] = parts;
  if (!target.startsWith('/')) return `not a volume specification: ${JSON.stringify(spec)}; not converted`;
  if (BIND_SOURCE.test(source)) return { type: 'bind', source, target };
  return { type: 'volume', source, target, readOnly: options.split(',').includes('ro') };
}

function longVolume(entry: Record<string, unknown>): Mount | string {
  const type = scalarText(entry['type'] ?? 'volume');
  const target = entry['target'];
  if (typeof target !== 'string' || !target.startsWith('/'))
    return 'target must be an absolute path; not converted';
  const source = typeof entry['source'] === 'string' ? entry['source'] : undefined;
  if (type === 'tmpfs')
    return { type, target, size: isRecord(entry['tmpfs']) ? entry['tmpfs']['size'] : undefined };
  if (type === 'bind') return { type, source: source ?? '', target };
  if (type !== 'volume') return { type, target };
  return { type, source, target, readOnly: entry['read_only'] === true };
}

function namedVolume(
  source: string,
  target: string,
  readOnly: boolean,
  at: FieldPath,
  draft: ServiceDraft,
  conv: Conversion,
): void {
  const declared = conv.project.model['volumes'];
  const volume = isRecord(declared) ? declared[source] : undefined;
  if (!isRecord(declared) || !Object.hasOwn(declared, source)) {
    conv.warn(at, `volume ${source} is not declared in the top-level volumes; converted as a local volume`);
  }
  const mount: NonNullable<ServiceDraft['spec']['volumes']>[number] = {
    name: dnsLabelOf(source),
    target: normalisePath(target),
    ...(readOnly ? { readOnly: true } : {}),
  };
  if (isRecord(volume)) {
    if (typeof volume['driver'] === 'string' && volume['driver'] !== 'local') mount.driver = volume['driver'];
    if (isRecord(volume['driver_opts'])) {
      mount.driverOptions = Object.fromEntries(
        Object.entries(volume['driver_opts']).map(([k, v]) => [k, String(v)]),
      );
    }
    if (volume['external'] === true || typeof volume['name'] === 'string') {
      conv.warn(
        ['volumes', source],
        `berth names and creates its volumes itself: the existing Docker volume is not reused (copy its data into berth's volume ${mount.name})`,
      );
    }
  }
  (draft.spec.volumes ??= []).push(mount);
}

export const tmpfs: FieldHandler = (value, field, draft, conv) => {
  const entries = Array.isArray(value) ? value : [value];
  for (const [index, entry] of entries.entries()) {
    const at = Array.isArray(value) ? [...field, index] : field;
    const [target = '', options = ''] = String(entry).split(':');
    let size: unknown;
    for (const option of options.split(',').filter((o) => o !== '')) {
      if (option.startsWith('size=')) size = option.slice('size='.length);
      else if (option !== 'rw') conv.warn(at, `tmpfs option ${option} not converted`);
    }
    addTmpfs(draft, target, size, at, conv);
  }
};

function addTmpfs(draft: ServiceDraft, target: string, size: unknown, at: FieldPath, conv: Conversion): void {
  if (!target.startsWith('/')) {
    conv.warn(at, 'tmpfs target must be an absolute path; not converted');
    return;
  }
  const memory = size === undefined ? undefined : composeMemory(size);
  if (memory === null) conv.warn(at, `tmpfs size ${JSON.stringify(size)} is not a size; left to the default`);
  (draft.spec.tmpfs ??= []).push({
    target: normalisePath(target),
    ...(memory === null || memory === undefined ? {} : { size: memory }),
  });
}

/** `configs:` of a service; the default target is /<config name>, as compose mounts it. */
export const configsOf =
  (references: StorageReferences): FieldHandler =>
  (value, field, draft, conv) => {
    for (const [index, entry] of (Array.isArray(value) ? value : []).entries()) {
      const mount = fileMount(entry, [...field, index], references.configs, conv, (name) => `/${name}`);
      if (mount === null) continue;
      if (mount.uid !== undefined || mount.gid !== undefined) {
        conv.warn(
          [...field, index],
          'berth mounts config files owned by root (0444 readable by all); uid and gid not converted',
        );
      }
      (draft.spec.configs ??= []).push({
        source: mount.reference.name,
        key: mount.reference.key,
        target: mount.target,
        ...(mount.mode === undefined ? {} : { mode: mount.mode }),
      });
    }
  };

/** `secrets:` of a service; the default target is /run/secrets/<secret name>, as compose mounts it. */
export const secretsOf =
  (references: StorageReferences): FieldHandler =>
  (value, field, draft, conv) => {
    for (const [index, entry] of (Array.isArray(value) ? value : []).entries()) {
      const mount = fileMount(
        entry,
        [...field, index],
        references.secrets,
        conv,
        (name) => `/run/secrets/${name}`,
      );
      if (mount === null) continue;
      (draft.spec.secrets ??= []).push({
        source: mount.reference.name,
        key: mount.reference.key,
        target: mount.target,
        ...(mount.mode === undefined ? {} : { mode: mount.mode }),
        ...(mount.uid === undefined ? {} : { uid: mount.uid }),
        ...(mount.gid === undefined ? {} : { gid: mount.gid }),
      });
    }
  };

interface FileMount {
  reference: FileReference;
  target: string;
  mode?: string;
  uid?: number;
  gid?: number;
}

function fileMount(
  entry: unknown,
  at: FieldPath,
  references: Map<string, FileReference>,
  conv: Conversion,
  defaultTarget: (name: string) => string,
): FileMount | null {
  const source = isRecord(entry) ? entry['source'] : entry;
  if (typeof source !== 'string') {
    conv.warn(at, 'must name a top-level entry; not converted');
    return null;
  }
  const reference = references.get(source);
  if (reference === undefined) {
    conv.warn(at, `${source} was not converted (see its top-level entry); not mounted`);
    return null;
  }
  const written = isRecord(entry) && typeof entry['target'] === 'string' ? entry['target'] : undefined;
  // A relative secret target is a name under /run/secrets (compose), a relative config target under /.
  const target =
    written === undefined
      ? defaultTarget(source)
      : written.startsWith('/')
        ? written
        : defaultTarget(written);
  const mount: FileMount = { reference, target: normalisePath(target) };
  if (isRecord(entry)) {
    if (entry['mode'] !== undefined)
      mount.mode = octalMode(entry['mode'], conv.project.scalarSource([...at, 'mode']));
    for (const id of ['uid', 'gid'] as const) {
      if (entry[id] !== undefined) mount[id] = Number(entry[id]);
    }
  }
  return mount;
}

/** Compose reads `mode: 0440` as octal (YAML 1.1); the yaml package as decimal 440. */
function octalMode(value: unknown, source: string | undefined): string {
  const text = source ?? String(value);
  if (/^0o?[0-7]{1,4}$/.test(text)) return `0${text.replace(/^0o?/, '').padStart(3, '0').slice(-3)}`;
  const number = Number(value);
  return `0${(number & 0o777).toString(8).padStart(3, '0')}`;
}

function normalisePath(path: string): string {
  const normal = path.replace(/\/+/g, '/').replace(/\/$/, '');
  return normal === '' ? '/' : normal;
}
