/**
 * ReplicaRequest -> ContainerCreateSpec: what a replica looks like as a container. Pure, so the
 * mapping (labels, ports, restart policy, command/args) is tested without an engine.
 */
import { BerthError } from '../core/errors.js';
import { LABELS, type ReplicaRequest } from '../api/types.js';
import {
  DEFAULT_CAPABILITIES,
  DEFAULT_READ_ONLY_ROOT_FILESYSTEM,
  NO_NEW_PRIVILEGES,
  READ_ONLY_ROOT_TMPFS,
} from '../manifests/defaults.js';
import { ADDABLE_CAPABILITIES } from '../manifests/linux-capabilities.js';
import type { HealthcheckSpec } from '../manifests/types.js';
import type {
  BindMount,
  ContainerCreateSpec,
  ContainerSecurity,
  PortBinding,
  TmpfsMount,
  VolumeMount,
} from './runtime.js';

/** Docker's own rule for container names; also keeps names safe as directory names. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;

export function assertContainerName(name: string): void {
  if (!CONTAINER_NAME.test(name)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `invalid replica name ${JSON.stringify(name)}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
    );
  }
}

export interface ContainerPlacement {
  nodeName: string;
  /** The node's advertise address: every port is published there, on an ephemeral host port. */
  address: string;
  mounts: BindMount[];
  /** Resolvers and search domain for service discovery; null leaves Docker's defaults. */
  dns: ContainerCreateSpec['dns'];
}

export function buildContainerSpec(
  request: ReplicaRequest,
  placement: ContainerPlacement,
): ContainerCreateSpec {
  assertContainerName(request.name);
  return {
    name: request.name,
    image: request.image,
    entrypoint: request.command,
    cmd: request.args,
    env: { ...request.env },
    labels: replicaLabels(request, placement.nodeName),
    ports: portBindings(request, placement.address),
    mounts: placement.mounts,
    volumes: volumeMounts(request),
    tmpfs: tmpfsMounts(request),
    security: containerSecurity(request),
    nanoCpus: request.limits.nanoCpus,
    memoryBytes: request.limits.memoryBytes,
    restart: restartPolicy(request.restart),
    // Docker counts the stop timeout in whole seconds; round up so the grace is never shorter.
    stopTimeoutSeconds: Math.ceil(request.stopGracePeriodMs / 1000),
    init: request.init,
    user: request.user,
    workingDir: request.workingDir,
    dns: placement.dns,
  };
}

export function replicaLabels(request: ReplicaRequest, nodeName: string): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.service]: request.service,
    [LABELS.namespace]: request.namespace,
    [LABELS.revision]: request.revision,
    [LABELS.specHash]: request.specHash,
    [LABELS.slot]: request.slot,
    [LABELS.node]: nodeName,
    [LABELS.healthcheck]: JSON.stringify(request.healthcheck),
    [LABELS.specSummary]: JSON.stringify(request.specSummary),
    [LABELS.stopGraceMs]: String(request.stopGracePeriodMs),
    ...(request.job === undefined
      ? {}
      : { [LABELS.job]: request.job.name, [LABELS.attempt]: String(request.job.attempt) }),
    ...(request.job?.cronJob === undefined ? {} : { [LABELS.cronJob]: request.job.cronJob }),
  };
}

/** Labels of a replica's volume: the snapshot reports it, and placement pins its slot to it. */
export function volumeLabels(request: ReplicaRequest, volume: string): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.namespace]: request.namespace,
    [LABELS.service]: request.service,
    [LABELS.volume]: volume,
    [LABELS.slot]: request.slot,
  };
}

function volumeMounts(request: ReplicaRequest): VolumeMount[] {
  return (request.volumes ?? []).map((v) => ({
    source: v.source,
    target: v.target,
    readOnly: v.readOnly,
    driver: v.driver,
    driverOptions: { ...v.driverOptions },
    labels: volumeLabels(request, v.volume),
  }));
}

/**
 * The service's tmpfs mounts (Docker's Mounts defaults: exec allowed, nosuid, nodev), and the /tmp
 * of a read-only root filesystem unless the service mounts something of its own there: Docker
 * refuses two mounts at one target, and what the service wrote wins.
 */
function tmpfsMounts(request: ReplicaRequest): TmpfsMount[] {
  const own: TmpfsMount[] = (request.tmpfs ?? []).map((t) => ({
    target: t.target,
    options: `rw,nosuid,nodev,mode=1777${t.sizeBytes > 0 ? `,size=${t.sizeBytes}` : ''}`,
  }));
  const taken = new Set([...own.map((t) => t.target), ...(request.volumes ?? []).map((v) => v.target)]);
  if (request.readOnlyRootFilesystem === true && !taken.has(READ_ONLY_ROOT_TMPFS.target)) {
    own.push({ ...READ_ONLY_ROOT_TMPFS });
  }
  return own;
}

/**
 * Every target port, plus the health check's port when it is not one of them: the prober reaches
 * containers only through published ports, so an http/tcp check on an unlisted port must be
 * published as well.
 */
function portBindings(request: ReplicaRequest, address: string): PortBinding[] {
  const bindings: PortBinding[] = request.ports.map((port) => ({
    port: port.target,
    protocol: port.protocol,
    hostIp: address,
  }));
  const probePort = probedPort(request.healthcheck);
  if (
    probePort !== null &&
    !bindings.some((binding) => binding.port === probePort && binding.protocol === 'tcp')
  ) {
    bindings.push({ port: probePort, protocol: 'tcp', hostIp: address });
  }
  return bindings;
}

function probedPort(healthcheck: HealthcheckSpec | null): number | null {
  if (healthcheck === null) return null;
  const probe = healthcheck.probe;
  return probe.type === 'http' || probe.type === 'tcp' ? probe.port : null;
}

/**
 * Swarm's restart conditions on Docker's policies: `any` restarts until berth stops it
 * (unless-stopped, so an engine restart does not revive what berth stopped), `on-failure` keeps
 * its attempt limit (0 = unlimited, as in Docker), `none` never restarts.
 */
function restartPolicy(restart: ReplicaRequest['restart']): ContainerCreateSpec['restart'] {
  switch (restart.condition) {
    case 'any':
      return { policy: 'unless-stopped', maxRetries: 0 };
    case 'on-failure':
      return { policy: 'on-failure', maxRetries: restart.maxAttempts };
    case 'none':
      return { policy: 'no', maxRetries: 0 };
  }
}

/**
 * no-new-privileges on every container, whatever the request says. The capability allowlist is
 * checked again here: the planner only sends what the schema accepted, but a hand-edited saved
 * plan reaches the embedded agent without the wire's schema check.
 */
function containerSecurity(request: ReplicaRequest): ContainerSecurity {
  const capabilities = request.capabilities ?? DEFAULT_CAPABILITIES;
  const refused = capabilities.add.filter(
    (name) => !(ADDABLE_CAPABILITIES as readonly string[]).includes(name),
  );
  if (refused.length > 0) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `replica ${request.name}: capabilities ${refused.join(', ')} cannot be added (allowed: ${ADDABLE_CAPABILITIES.join(', ')})`,
    );
  }
  return {
    noNewPrivileges: NO_NEW_PRIVILEGES,
    readOnlyRootFilesystem: request.readOnlyRootFilesystem ?? DEFAULT_READ_ONLY_ROOT_FILESYSTEM,
    capDrop: [...capabilities.drop],
    capAdd: [...capabilities.add],
  };
}
