/**
 * Wire types shared by the operator and the agents: what a node reports (observed state) and
 * what the operator asks a node to run. JSON-serialisable, no classes.
 */
import type { CapabilitiesSpec, HealthcheckSpec } from '../manifests/types.js';

/** Labels every managed container carries: the ground truth for "what runs". */
export const LABELS = {
  managed: 'berth.managed',
  service: 'berth.service',
  namespace: 'berth.namespace',
  revision: 'berth.revision',
  specHash: 'berth.spec-hash',
  slot: 'berth.slot',
  node: 'berth.node',
  /** JSON of the HealthcheckSpec, so an agent that restarts resumes probing. */
  healthcheck: 'berth.healthcheck',
  /** JSON of a redacted summary of the spec, for field-level plans against the live cluster. */
  specSummary: 'berth.spec-summary',
  stopGraceMs: 'berth.stop-grace-ms',
  /** A run of a Job: the Job's name. Such a container is never restarted nor replaced. */
  job: 'berth.job',
  /** Which run of the Job (1, 2, ...), counted over its spec hash. */
  attempt: 'berth.attempt',
  /** A run of a CronJob: the CronJob's name (berth.job is the run's own name). */
  cronJob: 'berth.cronjob',
  /** On volumes: the service's name for the volume (the slot is in berth.slot). */
  volume: 'berth.volume',
} as const;

/** A berth volume on a node (labelled berth.managed=true), whether or not a replica mounts it. */
export interface ObservedVolume {
  /** The Docker volume name, see volumeName(). */
  name: string;
  namespace: string;
  service: string;
  /** The service's name for it (spec.volumes[].name). */
  volume: string;
  slot: string;
  driver: string;
  /** Bytes used, where the engine says it (the local driver, through `docker system df`); else null. */
  sizeBytes: number | null;
}

/** A volume a replica mounts: `source` is the Docker volume, created on first use. */
export interface ReplicaVolume {
  source: string;
  /** The service's name for it. */
  volume: string;
  target: string;
  readOnly: boolean;
  driver: string;
  driverOptions: Record<string, string>;
}

export type ContainerState = 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';
export type ReplicaHealth = 'starting' | 'healthy' | 'unhealthy' | 'none';

export interface PublishedPort {
  target: number;
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
}

export interface ObservedReplica {
  /** Docker container name: deterministic, see replicaName(). */
  name: string;
  id: string;
  node: string;
  namespace: string;
  service: string;
  slot: string;
  specHash: string;
  revision: string;
  state: ContainerState;
  /** `none` when the service has no health check (running = ready). */
  health: ReplicaHealth;
  /** Why the last probe failed, or why the container is not running. */
  healthDetail: string | null;
  exitCode: number | null;
  restartCount: number;
  createdAt: string;
  startedAt: string | null;
  ports: PublishedPort[];
  /** Redacted spec summary from the label, when present. */
  specSummary: Record<string, unknown> | null;
}

export interface NodeCapacity {
  nanoCpus: number;
  memoryBytes: number;
}

export interface NodeSnapshot {
  name: string;
  /** The address replicas publish their ports on (and probes reach them at). */
  address: string;
  labels: Record<string, string>;
  capacity: NodeCapacity;
  engineVersion: string;
  /** `drain`: up, but takes no new replicas; the ones it runs are moved off start-first. */
  status: 'ready' | 'down' | 'drain';
  /** Image references present on the node (repo:tag). */
  images: string[];
  /** Containers of Services. */
  replicas: ObservedReplica[];
  /** Containers of Job runs, running or finished. Absent from snapshots of older agents. */
  jobRuns?: ObservedJobRun[];
  /**
   * berth volumes on the node: a slot with a volume is placed where its volume is. Absent from
   * snapshots of older agents; a node that is down reports the volumes it last reported.
   */
  volumes?: ObservedVolume[];
  /**
   * What carries the node's published TCP ports: `nftables` (kernel DNAT) or `userspace` (the
   * mesh's balancer). Absent from snapshots of older agents and before the node's first routing table.
   */
  dataPlane?: MeshDataPlane;
  /** Which berth the node's agent is and the agent protocol it speaks (api/agent-protocol.ts); absent from older agents. */
  agent?: { version: string; protocol: number };
  /** Set by the operator on the snapshot of an agent older than itself: why the node takes no new replicas. */
  incompatible?: string;
}

export type MeshDataPlane = 'nftables' | 'userspace';

/** One run of a Job as its node reports it. */
export interface ObservedJobRun {
  name: string;
  node: string;
  namespace: string;
  job: string;
  /** Set for a run of a CronJob: its name (`job` is the run's). */
  cronJob?: string;
  attempt: number;
  specHash: string;
  revision: string;
  state: ContainerState;
  /** null while it runs. */
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** The last lines of its output, once it has finished; null while it runs. */
  output: string | null;
}

export interface ObservedState {
  nodes: NodeSnapshot[];
}

/** A file delivered into a container, read-only. */
export interface ReplicaFile {
  target: string;
  mode: number;
  uid: number;
  gid: number;
  /** base64 of the exact bytes. */
  contentBase64: string;
  /** Secrets go to memory-backed storage only and are never logged. */
  secret: boolean;
}

/** Everything an agent needs to run one replica. Built from a ServiceSpec by the operator. */
export interface ReplicaRequest {
  name: string;
  namespace: string;
  service: string;
  slot: string;
  specHash: string;
  revision: string;
  image: string;
  command: string[] | null;
  args: string[] | null;
  env: Record<string, string>;
  ports: { target: number; protocol: 'tcp' | 'udp' }[];
  files: ReplicaFile[];
  healthcheck: HealthcheckSpec | null;
  limits: { nanoCpus: number; memoryBytes: number };
  restart: { condition: 'any' | 'on-failure' | 'none'; maxAttempts: number };
  stopGracePeriodMs: number;
  user: string | null;
  /**
   * Optional on the wire only for requests of an older operator or an older saved plan, which
   * mean false and Docker's default capabilities; this berth always sends both.
   */
  readOnlyRootFilesystem?: boolean;
  capabilities?: CapabilitiesSpec;
  workingDir: string | null;
  init: boolean;
  /** Absent (none) in requests of an older operator. */
  volumes?: ReplicaVolume[];
  tmpfs?: { target: string; sizeBytes: number }[];
  specSummary: Record<string, unknown>;
  /**
   * Set for a run of a Job: the container is labelled with it, never restarted, and once it
   * exists never replaced, whatever its state (a finished run is not run again).
   */
  job?: { name: string; attempt: number; cronJob?: string };
}

/** One replica behind a published port: where the mesh on any node connects to reach it. */
export interface MeshBackend {
  /** `node/container name`: unique in the cluster, unlike the name alone. */
  id: string;
  host: string;
  port: number;
  /**
   * For a replica of the node the table is served on: the container's own address and target port
   * on the engine's bridge, reachable from that node only. Set by the node itself (never by the
   * operator), for the kernel data plane, which DNATs there rather than through the engine's proxy.
   */
  local?: { host: string; port: number };
}

/** A published port of a service and the healthy replicas (on every node) that serve it. */
export interface MeshRoute {
  /** `namespace/name` */
  service: string;
  published: number;
  protocol: 'tcp';
  /** Balanced per HTTP request instead of per connection; absent means tcp. */
  appProtocol?: 'tcp' | 'http';
  backends: MeshBackend[];
}

/**
 * A service as other containers reach it by name (`name`, `name.namespace`): every TCP target
 * port it lists and the healthy replicas (on every node) behind it. Each node gives the service an
 * address of its own (its service address) and answers the name with it.
 */
export interface ServiceRoute {
  namespace: string;
  name: string;
  ports: { target: number; appProtocol?: 'tcp' | 'http'; backends: MeshBackend[] }[];
}

/** The whole routing table for a node; a newer `version` replaces an older one, never the reverse. */
export interface MeshRoutes {
  version: number;
  routes: MeshRoute[];
  /** Services reached by name from containers. Absent from tables of older operators. */
  services?: ServiceRoute[];
}

export type ReplicaWaitOutcome = 'healthy' | 'unhealthy' | 'exited' | 'missing' | 'timeout';

export interface ReplicaWaitResult {
  outcome: ReplicaWaitOutcome;
  replica: ObservedReplica | null;
  /** Human-readable cause for anything but `healthy`. */
  reason: string | null;
}

/** One line a replica wrote, as its engine recorded it. */
export interface ReplicaLogLine {
  /**
   * The engine's timestamp, RFC 3339 in UTC with exactly nine fraction digits, so lines of every
   * node sort in time order as text.
   */
  at: string;
  stream: 'stdout' | 'stderr';
  /** Without its newline; cut at MAX_LOG_LINE_BYTES. */
  text: string;
}

export interface ReplicaLogOptions {
  /** Only lines written at or after this time (seconds since the epoch, fractions allowed). */
  sinceSeconds?: number;
  /** Only the last N lines (before following). */
  tail?: number;
  /** Keep the stream open and send lines as they are written, until the container stops. */
  follow?: boolean;
}

/**
 * What the operator needs from a node. Implemented in-process (the embedded default, on the
 * local Docker socket) and over HTTP by the agent client; both behave the same.
 */
export interface NodeAgent {
  readonly name: string;
  snapshot(): Promise<NodeSnapshot>;
  /** An in-process agent's mesh data plane now (null before its first table); remote agents report it in snapshots. */
  meshDataPlane?(): MeshDataPlane | null;
  /** Which berth the agent is, and why it is too old if it is, as last seen (null before any snapshot). */
  reportedAgent?(): { version: string | null; incompatible: string | null } | null;
  /** Creates and starts the replica unless one with that name already runs; idempotent. */
  ensureReplica(request: ReplicaRequest): Promise<ObservedReplica>;
  /**
   * Readies the replica without starting it: image present, files written, container created, so
   * that a later ensureReplica of the same request only starts it. A replica of that name that
   * exists already is left as it is. Until started, the container is in state `created`: one left
   * behind (a failed batch, an operator crash) is removed by the next plan.
   */
  prepareReplica(request: ReplicaRequest): Promise<void>;
  /** Resolves once the replica is healthy (or running, without a health check), fails, or time runs out. */
  awaitReplica(name: string, options: { timeoutMs: number }): Promise<ReplicaWaitResult>;
  /**
   * The monitor window of a rollout: resolves `healthy` if the replica stays up (running, not
   * unhealthy, no restart) for `durationMs`, or early with the failure (`exited`, `unhealthy`,
   * `missing`) as soon as it happens.
   */
  watchReplica(name: string, options: { durationMs: number }): Promise<ReplicaWaitResult>;
  /** Stops (SIGTERM, then SIGKILL after the grace period) and removes; a missing replica is fine. */
  removeReplica(name: string): Promise<void>;
  /** The node's berth volumes, with their size where the engine knows it (walks the volumes: slow). */
  listVolumes(): Promise<ObservedVolume[]>;
  /**
   * Removes a berth volume (`berth.` names only); a missing one is fine. Only for a Service removed
   * from git that says volumeReclaim: delete, after its replicas are gone.
   */
  removeVolume(name: string): Promise<void>;
  /**
   * Serves `routes` on the node's address (one TCP balancer per published port). Resolves once
   * every backend that left the table has no open connection through this node, or after
   * `drainTimeoutMs`: a replica is drained this way before it is stopped.
   */
  setMeshRoutes(table: MeshRoutes, options: { drainTimeoutMs: number }): Promise<void>;
  /**
   * The replica's output (stdout and stderr) in the order written, with the engine's timestamps.
   * Pulled: a slow reader slows the engine's reader down rather than buffering; breaking out of
   * the iteration ends it. ERR_CONTAINER_NOT_FOUND when the node has no replica of that name.
   */
  logs(name: string, options: ReplicaLogOptions): AsyncIterable<ReplicaLogLine>;
  /**
   * Long poll on the node's replicas: resolves with the node's change mark as soon as it differs
   * from `since` (a replica started, died, was removed or changed health; null: at once), or with
   * the unchanged mark after `timeoutMs`. How the operator observes without polling every node.
   */
  awaitChange(since: string | null, options: { timeoutMs: number }): Promise<NodeChangeMark>;
  close(): Promise<void>;
}

/** Where a node's replicas stand: any change of them gives a new mark. */
export interface NodeChangeMark {
  mark: string;
}

/** What a rollout tells the mesh: membership follows health, and a replica leaves before it stops. */
export interface MeshMembership {
  /** A replica became healthy: every node routes to it from now on. */
  admit(replica: ObservedReplica): Promise<void>;
  /**
   * A replica is about to be stopped: every node stops giving it new connections, and this
   * resolves once its open connections have finished on every node, or after `drainTimeoutMs`.
   */
  withdraw(replica: { name: string; node: string }, drainTimeoutMs: number): Promise<void>;
}
