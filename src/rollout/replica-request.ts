import type { ReplicaFile, ReplicaRequest } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import type { DesiredState, ServiceSpec } from '../manifests/types.js';
import type { SecretReader } from '../secrets/secret-reader.js';
import { resolveEnv, specHashOf, summariseService } from '../plan/spec-summary.js';

/** Everything a node needs to run one replica of `spec` in `slot`, as the plan named it. */
export async function buildReplicaRequest(
  spec: ServiceSpec,
  desired: DesiredState,
  target: { slot: string; name: string },
  readSecret: SecretReader | null,
): Promise<ReplicaRequest> {
  const summary = summariseService(spec, desired);
  const files: ReplicaFile[] = spec.configs.map((mount) => {
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
  for (const mount of spec.secrets) {
    if (!readSecret) {
      throw new BerthError(
        'ERR_NOT_SUPPORTED',
        `service ${spec.namespace}/${spec.name} mounts secret ${mount.source}, but the operator has no age identity (set BERTH_AGE_KEY_FILE or BERTH_AGE_KEY)`,
      );
    }
    const secret = desired.secrets.find((s) => s.name === mount.source && s.namespace === spec.namespace);
    if (secret?.data[mount.key] === undefined) {
      throw new BerthError(
        'ERR_MANIFEST_INVALID',
        `secret ${mount.source}/${mount.key} used by ${spec.name} is missing`,
      );
    }
    const plaintext = await readSecret(secret, mount.key);
    files.push({
      target: mount.target,
      mode: mount.mode,
      uid: mount.uid,
      gid: mount.gid,
      contentBase64: Buffer.from(plaintext).toString('base64'),
      secret: true,
    });
  }
  return {
    name: target.name,
    namespace: spec.namespace,
    service: spec.name,
    slot: target.slot,
    specHash: specHashOf(summary),
    revision: desired.revision,
    image: spec.image,
    command: spec.command,
    args: spec.args,
    env: resolveEnv(spec, desired),
    ports: spec.ports.map((p) => ({ target: p.target, protocol: p.protocol })),
    files,
    healthcheck: spec.healthcheck,
    limits: spec.resources.limits,
    restart: spec.restart,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    user: spec.user,
    workingDir: spec.workingDir,
    init: spec.init,
    specSummary: summary as unknown as Record<string, unknown>,
  };
}
