import { BerthError } from '../core/errors.js';
import { withoutCredential } from '../core/url-credential.js';
import type { ClusterFingerprint } from './cluster-fingerprint.js';
import type { Plan } from './types.js';

export const PLAN_FILE_FORMAT = 'berth-plan';
/** Bumped whenever a field changes meaning or goes away: an older berth then refuses the file. */
export const PLAN_FILE_VERSION = 1;

/** Where a saved plan came from: what `berth apply --plan` checks again before it runs it. */
export interface PlanSource {
  /** A local path or an http(s) URL, never with the credential that may have been given. */
  repo: string;
  path: string;
  /** The branch, tag or commit that was resolved. */
  ref: string;
  /** The full revision `ref` pointed at. */
  revision: string;
}

/**
 * `berth plan --out`: a plan, what it was computed from, and the cluster it was computed
 * against. It holds no secret plaintext (secret files are references, their ciphertexts are age
 * payloads as in git) and no credential.
 */
export interface PlanFile {
  format: typeof PLAN_FILE_FORMAT;
  version: typeof PLAN_FILE_VERSION;
  createdAt: string;
  source: PlanSource;
  observed: ClusterFingerprint;
  plan: Plan;
}

/** `https://user:token@host/repo.git` -> `https://host/repo.git`; anything else as it is. */
export { withoutCredential };

export function renderPlanFile(content: Omit<PlanFile, 'format' | 'version'>): string {
  const file: PlanFile = {
    format: PLAN_FILE_FORMAT,
    version: PLAN_FILE_VERSION,
    createdAt: content.createdAt,
    source: { ...content.source, repo: withoutCredential(content.source.repo) },
    observed: content.observed,
    plan: content.plan,
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The first thing that keeps `value` from being a plan file of this version, or null. */
function shapeProblem(value: Record<string, unknown>): string | null {
  const source = value['source'];
  const observed = value['observed'];
  const plan = value['plan'];
  if (!isRecord(source) || !['repo', 'path', 'ref', 'revision'].every((k) => typeof source[k] === 'string'))
    return 'its source (repo, path, ref, revision) is missing or incomplete';
  if (!isRecord(observed) || !Array.isArray(observed['nodes'])) return 'its observed cluster is missing';
  if (!isRecord(plan) || !Array.isArray(plan['services']) || !isRecord(plan['secretCiphertexts']))
    return 'its plan is missing or incomplete';
  if (plan['revision'] !== source['revision']) return 'its plan and its source name different revisions';
  for (const service of plan['services'] as unknown[]) {
    if (!isRecord(service) || !Array.isArray(service['batches']))
      return 'a service of its plan has no batches';
    for (const step of (service['batches'] as unknown[]).flat()) {
      if (!isRecord(step)) return 'a step of its plan is not an object';
      if (step['action'] === 'remove') continue;
      if (step['action'] !== 'create' && step['action'] !== 'replace')
        return `a step of its plan has an unknown action ${JSON.stringify(step['action'])}`;
      if (!isRecord(step['request']) || !Array.isArray(step['request']['files']))
        return `step ${String(step['name'])} of its plan carries no replica request`;
    }
  }
  return null;
}

/** Reads a saved plan; a file that is not one, or of another version, is refused naming why. */
export function parsePlanFile(text: string, where: string): PlanFile {
  const refuse = (why: string): BerthError =>
    new BerthError('ERR_BAD_REQUEST', `${where} is not a usable berth plan: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw refuse(`it is not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!isRecord(value) || value['format'] !== PLAN_FILE_FORMAT)
    throw refuse(`it has no "format": "${PLAN_FILE_FORMAT}" (make one with berth plan --out)`);
  if (value['version'] !== PLAN_FILE_VERSION) {
    throw refuse(
      `it is version ${JSON.stringify(value['version'])}, this berth reads version ${PLAN_FILE_VERSION} (make the plan again with this berth)`,
    );
  }
  const problem = shapeProblem(value);
  if (problem !== null) throw refuse(problem);
  return value as unknown as PlanFile;
}
