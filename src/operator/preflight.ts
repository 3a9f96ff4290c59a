/**
 * Everything checked before a revision touches the cluster. The checks that need neither a cluster
 * nor a key (`checkRevision`) are shared with `berth validate`, so what validate accepts, plan and
 * apply accept; the secret check needs the plan (only what starts is decrypted) and the key.
 */
import type { BerthPort } from '../core/berth-ports.js';
import { BerthError } from '../core/errors.js';
import type { DesiredState, LoadResult, ManifestProblem } from '../manifests/types.js';
import type { Plan } from '../plan/types.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import {
  describeUnsupportedFeature,
  findUnsupportedFeatures,
  type UnsupportedFeature,
} from './capabilities.js';
import { findReservedPortConflicts } from './reserved-ports.js';
import { unreadableSecrets } from './secret-check.js';

export type RevisionCheck =
  | { ok: true; desired: DesiredState }
  | { ok: false; problems: ManifestProblem[]; unsupported: [] }
  | { ok: false; problems: []; unsupported: UnsupportedFeature[] };

/**
 * The manifests load, and ask for nothing this build cannot do nor publish a port that berth was
 * configured to listen on (`berthPorts`: only the operator knows them). No cluster, no key.
 */
export function checkRevision(loaded: LoadResult, berthPorts: readonly BerthPort[] = []): RevisionCheck {
  if (!loaded.ok) return { ok: false, problems: loaded.problems, unsupported: [] };
  const unsupported = [
    ...findUnsupportedFeatures(loaded.desired),
    ...findReservedPortConflicts(loaded.desired, berthPorts),
  ];
  if (unsupported.length > 0) return { ok: false, problems: [], unsupported };
  return { ok: true, desired: loaded.desired };
}

/** A refused revision as the error reconcile records and reports. */
export function revisionCheckError(check: Exclude<RevisionCheck, { ok: true }>): BerthError {
  const lines = [
    ...check.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`),
    ...check.unsupported.map(describeUnsupportedFeature),
  ];
  const code = check.problems.length > 0 ? 'ERR_MANIFEST_INVALID' : 'ERR_NOT_SUPPORTED';
  return new BerthError(code, `invalid manifests: ${lines.join('; ')}`, { data: { problems: lines } });
}

/** Every secret this plan delivers decrypts with the operator's key; null when so. */
export async function checkSecrets(
  plan: Plan,
  desired: DesiredState,
  readSecret: SecretReader | null,
): Promise<BerthError | null> {
  const problems = await unreadableSecrets(plan, desired, readSecret);
  if (problems.length === 0) return null;
  return new BerthError('ERR_SECRET_UNREADABLE', `secrets cannot be delivered: ${problems.join('; ')}`, {
    data: { problems },
  });
}
