/**
 * What a conversion carries along: the project, and the messages it makes. Every message names
 * the compose field it is about, so it prints as `file:line: field: why`.
 */
import { formatFieldPath, type FieldPath } from '../manifests/field-path.js';
import type { WrittenService } from '../manifests/types.js';
import type { ComposeProject } from './compose-project.js';

export interface ConversionMessage {
  severity: 'warning' | 'error';
  path: FieldPath;
  message: string;
}

export interface Conversion {
  project: ComposeProject;
  messages: ConversionMessage[];
  /** Converted differently or not at all: the user should know, the output is still usable. */
  warn(path: FieldPath, message: string): void;
  /** Cannot be converted faithfully and must not be guessed (a secret without a recipient): exit 1. */
  fail(path: FieldPath, message: string): void;
}

export function createConversion(project: ComposeProject): Conversion {
  const messages: ConversionMessage[] = [];
  return {
    project,
    messages,
    warn: (path, message) => void messages.push({ severity: 'warning', path, message }),
    fail: (path, message) => void messages.push({ severity: 'error', path, message }),
  };
}

export function formatMessage(project: ComposeProject, message: ConversionMessage): string {
  const at = project.locate(message.path);
  const prefix = message.severity === 'error' ? 'error: ' : '';
  return `${at.file}:${at.line}: ${formatFieldPath(message.path)}: ${prefix}${message.message}`;
}

/** A named Docker volume mounted into a Service (the volumes field of berth Services). */
export interface VolumeMount {
  name: string;
  target: string;
  readOnly?: boolean;
  driver?: string;
  driverOptions?: Record<string, string>;
}

export interface TmpfsMount {
  target: string;
  size?: string | number;
}

/** A Service spec with the volume fields berth's Services gain alongside this importer. */
export type ImportedServiceSpec = WrittenService['spec'] & { volumes?: VolumeMount[]; tmpfs?: TmpfsMount[] };

/** One compose service on its way to a berth Service. */
export interface ServiceDraft {
  composeName: string;
  /** Path of the service in the compose model: ['services', composeName]. */
  path: FieldPath;
  spec: ImportedServiceSpec;
  labels: Record<string, string>;
}

/** Converts one compose service field into the draft; reports what does not convert. */
export type FieldHandler = (
  value: unknown,
  field: FieldPath,
  draft: ServiceDraft,
  conv: Conversion,
) => void | Promise<void>;

/** A DNS label made of a compose name: lowercase, `_` and other characters as `-`. */
export function dnsLabelOf(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}
