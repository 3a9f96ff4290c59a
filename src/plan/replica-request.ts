import type { ReplicaVolume } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { volumeName } from '../manifests/defaults.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import { resolveEnv, sha256Hex, type SpecSummary } from './spec-summary.js';
import type { PlannedFile, PlannedReplicaRequest } from './types.js';

/** What every replica of a service is sent, before a slot and a name make it one replica's. */
export type ReplicaTemplate = Omit<PlannedReplicaRequest, 'name' | 'slot'>;

function configFiles(spec: ServiceSpec, desired: DesiredState): PlannedFile[] {
  return spec.configs.map((mount) => {
    const config = desired.configs.find((c) => c.name === mount.source && c.namespace === spec.namespace);
    const content = config?.data[mount.key];
    if (content === undefined) {
      throw new BerthError(
        'ERR_MANIFEST_INVALID',
        `config ${mount.source}/${mount.key} used by ${spec.name} is missing`,
      );
    }
    return {
      target: mount.target,
      mode: mount.mode,
      uid: 0,
      gid: 0,
      contentBase64: Buffer.from(content, 'utf8').toString('base64'),
      secret: false,
    };
  });
}

/** Secret files as references; their ciphertexts go into `ciphertexts`, by digest. */
function secretFiles(
  spec: ServiceSpec,
  desired: DesiredState,
  ciphertexts: Record<string, string>,
): PlannedFile[] {
  return spec.secrets.map((mount) => {
    const secret = desired.secrets.find((s) => s.name === mount.source && s.namespace === spec.namespace);
    const armored = secret?.data[mount.key];
    if (secret === undefined || armored === undefined) {
      throw new BerthError(
        'ERR_MANIFEST_INVALID',
        `secret ${mount.source}/${mount.key} used by ${spec.name} is missing`,
      );
    }
    const digest = sha256Hex(armored);
    ciphertexts[digest] = armored;
    return {
      target: mount.target,
      mode: mount.mode,
      uid: mount.uid,
      gid: mount.gid,
      secret: true,
      ref: {
        namespace: secret.namespace,
        name: secret.name,
        key: mount.key,
        digest,
        ...(secret.file === undefined ? {} : { file: secret.file }),
      },
    };
  });
}

/**
 * Everything a node needs to run a replica of `spec`, as planned: pure, no I/O. Config contents
 * are carried as they are; secrets only as references, resolved to plaintext at send time.
 */
export function planReplicaTemplate(
  spec: ServiceSpec,
  desired: DesiredState,
  summary: SpecSummary,
  specHash: string,
  ciphertexts: Record<string, string>,
): ReplicaTemplate {
  return {
    namespace: spec.namespace,
    service: spec.name,
    specHash,
    revision: desired.revision,
    image: spec.image,
    command: spec.command,
    args: spec.args,
    env: resolveEnv(spec, desired),
    ports: spec.ports.map((p) => ({ target: p.target, protocol: p.protocol })),
    files: [...configFiles(spec, desired), ...secretFiles(spec, desired, ciphertexts)],
    healthcheck: spec.healthcheck,
    limits: spec.resources.limits,
    restart: spec.restart,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    user: spec.user,
    readOnlyRootFilesystem: spec.readOnlyRootFilesystem,
    capabilities: spec.capabilities,
    workingDir: spec.workingDir,
    init: spec.init,
    // Sources are per slot: replicaVolumes() fills them in once the slot is known.
    volumes: spec.volumes.map((v) => ({
      source: '',
      volume: v.name,
      target: v.target,
      readOnly: v.readOnly,
      driver: v.driver,
      driverOptions: { ...v.driverOptions },
    })),
    tmpfs: spec.tmpfs.map((t) => ({ ...t })),
    specSummary: summary as unknown as Record<string, unknown>,
  };
}

/** The template's volumes as one slot's: each named after the slot (see volumeName()). */
export function replicaVolumes(template: ReplicaTemplate, slot: string): ReplicaVolume[] {
  return (template.volumes ?? []).map((v) => ({
    ...v,
    source: volumeName(template.namespace, template.service, v.volume, slot),
  }));
}
