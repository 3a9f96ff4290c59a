/**
 * What the operator holds about where a joined node stands for placement, pure: its labels and
 * its advertise address. Both are given once, when the node joins, and kept in nodes.json; the
 * node's later snapshots cannot change them (a node that could relabel itself could pull the
 * replicas of any constrained service onto itself, and one that could announce another address
 * could have the mesh send traffic there). Labels change through `berth node label` (admin
 * certificate); an address, by removing the node and joining it again.
 */
import { isIP } from 'node:net';
import { BerthError } from '../core/errors.js';

export interface RecordedPlacement {
  labels: Record<string, string>;
  address: string;
}

/** Label keys as `--label k=v` and `node.labels.KEY` constraints use them; values are free text. */
const LABEL_KEY = /^[a-zA-Z0-9][a-zA-Z0-9_./-]{0,127}$/;
const MAX_LABELS = 64;
const MAX_VALUE_CHARS = 256;

function invalid(message: string): BerthError {
  return new BerthError('ERR_BAD_REQUEST', message);
}

function checkLabel(key: string, value: unknown): string {
  if (!LABEL_KEY.test(key)) {
    throw invalid(`label key "${key}" is not valid (letters, digits, _ . / -; at most 128)`);
  }
  if (typeof value !== 'string' || value.length > MAX_VALUE_CHARS) {
    throw invalid(`label ${key} needs a text value of at most ${MAX_VALUE_CHARS} characters`);
  }
  return value;
}

/** The labels of a request body (join, `berth node label`), checked; `undefined` stays absent. */
export function parseLabels(value: unknown, field: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${field} must be an object of text labels`);
  }
  const labels: Record<string, string> = {};
  for (const [key, text] of Object.entries(value)) labels[key] = checkLabel(key, text);
  if (Object.keys(labels).length > MAX_LABELS) throw invalid(`a node has at most ${MAX_LABELS} labels`);
  return labels;
}

/** The advertise address of a join request: an IP literal, or absent (an agent of an earlier version). */
export function parseAdvertiseAddress(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || isIP(value) === 0) {
    throw invalid(`the advertise address must be an IP address, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `berth node label`: the labels after setting `set` and removing `remove`. */
export function changeLabels(
  labels: Readonly<Record<string, string>>,
  change: { set: Readonly<Record<string, string>>; remove: readonly string[] },
): Record<string, string> {
  const next: Record<string, string> = { ...labels };
  for (const key of change.remove) delete next[key];
  for (const [key, value] of Object.entries(change.set)) next[key] = checkLabel(key, value);
  if (Object.keys(next).length > MAX_LABELS) throw invalid(`a node has at most ${MAX_LABELS} labels`);
  return Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}

export function formatLabels(labels: Readonly<Record<string, string>>): string {
  const text = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text === '' ? '(none)' : text;
}

export interface PlacementDrift {
  field: 'labels' | 'address';
  detail: string;
}

/**
 * How what a node reports differs from what the operator recorded (empty: no difference). The
 * operator keeps its own and says so; the node's replicas published on another address are not
 * routed to (mesh-routes.ts).
 */
export function placementDrift(
  recorded: Partial<RecordedPlacement>,
  reported: RecordedPlacement,
): PlacementDrift[] {
  const drift: PlacementDrift[] = [];
  if (recorded.labels !== undefined && !sameLabels(recorded.labels, reported.labels)) {
    drift.push({
      field: 'labels',
      detail: `labels ${formatLabels(reported.labels)} reported, ${formatLabels(recorded.labels)} held by the operator (change them with berth node label)`,
    });
  }
  if (recorded.address !== undefined && recorded.address !== reported.address) {
    drift.push({
      field: 'address',
      detail: `address ${reported.address} reported, ${recorded.address} recorded at join (to change it, remove the node with berth node rm and join it again)`,
    });
  }
  return drift;
}
