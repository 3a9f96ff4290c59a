/**
 * The narrow port between the agent and a container engine. The agent (local-agent.ts) and the
 * health prober only ever talk to a `ContainerRuntime`; docker-runtime.ts is its one real
 * implementation (dockerode). Everything here is plain data in the agent's own terms, so the
 * Docker API's shapes stay inside the adapter.
 */
import type { ContainerState, PublishedPort, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';

export interface EngineInfo {
  cpus: number;
  memoryBytes: number;
  engineVersion: string;
  hostname: string;
}

/** One container as the engine reports it (inspect), reduced to what berth reads. */
export interface RuntimeContainer {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: ContainerState;
  /** Exit code of the last run; null while it has never exited. */
  exitCode: number | null;
  oomKilled: boolean;
  /** The engine's own error for a container that failed to start, if any. */
  error: string | null;
  restartCount: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Published ports with the host port the engine picked; empty while not running. */
  ports: PublishedPort[];
  /** The container's IPv4 address on the engine's bridge network; absent without one (or not running). */
  address?: string;
}

export interface PortBinding {
  port: number;
  protocol: 'tcp' | 'udp';
  /** Host address to publish on; the host port is always ephemeral (picked by the engine). */
  hostIp: string;
}

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

/** A named volume, created by the engine on first use with these labels and driver. */
export interface VolumeMount {
  source: string;
  target: string;
  readOnly: boolean;
  driver: string;
  driverOptions: Record<string, string>;
  labels: Record<string, string>;
}

/** A volume as the engine reports it. */
export interface RuntimeVolume {
  name: string;
  driver: string;
  labels: Record<string, string>;
  /** null where the engine does not know it (drivers other than local, or not computed). */
  sizeBytes: number | null;
}

/** A memory-backed mount (Docker --tmpfs): `options` as mount(8) takes them. */
export interface TmpfsMount {
  target: string;
  options: string;
}

/** How much of the host a container's processes may reach. */
export interface ContainerSecurity {
  /** Docker `--security-opt no-new-privileges`: setuid binaries raise no privileges. */
  noNewPrivileges: boolean;
  readOnlyRootFilesystem: boolean;
  /** Capability names without CAP_; `ALL` in capDrop starts from none before capAdd. */
  capDrop: string[];
  capAdd: string[];
}

/** What to create, in engine-neutral terms. Built from a ReplicaRequest by container-spec.ts. */
export interface ContainerCreateSpec {
  name: string;
  image: string;
  /** Replaces the image's entrypoint when not null. */
  entrypoint: string[] | null;
  /** Replaces the image's default command when not null. */
  cmd: string[] | null;
  env: Record<string, string>;
  labels: Record<string, string>;
  ports: PortBinding[];
  mounts: BindMount[];
  volumes: VolumeMount[];
  tmpfs: TmpfsMount[];
  security: ContainerSecurity;
  /** 0 = no limit. */
  nanoCpus: number;
  /** 0 = no limit. */
  memoryBytes: number;
  restart: { policy: 'always' | 'unless-stopped' | 'on-failure' | 'no'; maxRetries: number };
  stopTimeoutSeconds: number;
  init: boolean;
  user: string | null;
  workingDir: string | null;
  /** Resolvers (in order), search domains and resolver options (`ndots:3`); null keeps the engine's defaults. */
  dns: { servers: string[]; search: string[]; options: string[] } | null;
}

export interface ExecResult {
  /** null when the command did not finish within the timeout. */
  exitCode: number | null;
  /** stdout and stderr interleaved, truncated to a few KiB. */
  output: string;
}

export type RuntimeEventKind = 'start' | 'die' | 'destroy';

export interface RuntimeEvent {
  kind: RuntimeEventKind;
  id: string;
  name: string;
  /** Exit code carried by `die` events. */
  exitCode: number | null;
}

export interface Subscription {
  /** Resolves once the event stream is open (or the subscription is closed). */
  connected: Promise<void>;
  close(): void;
}

export interface ContainerRuntime {
  /** Resolves when the engine answers; ERR_DOCKER_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  info(): Promise<EngineInfo>;
  /** Image references present (repo:tag), untagged images left out. */
  listImages(): Promise<string[]>;
  /**
   * Every volume labelled berth.managed=true. `withSizes` asks the engine for their disk usage
   * (`docker system df -v`), which walks the volumes: only for `berth volume ls`.
   */
  listManagedVolumes(options?: { withSizes?: boolean }): Promise<RuntimeVolume[]>;
  /** Removes a volume; fine if already gone. Fails while a container uses it. */
  removeVolume(name: string): Promise<void>;
  /** Every container labelled berth.managed=true, in any state. */
  listManaged(): Promise<RuntimeContainer[]>;
  /** null when no container has that name. */
  inspect(name: string): Promise<RuntimeContainer | null>;
  hasImage(ref: string): Promise<boolean>;
  /** Pulls only when the image is absent; ERR_IMAGE_NOT_FOUND when it cannot be had. */
  pullImage(ref: string): Promise<void>;
  /** Creates (does not start) a container; returns its id. */
  create(spec: ContainerCreateSpec): Promise<string>;
  start(name: string): Promise<void>;
  /** SIGTERM (or the image's stop signal), SIGKILL after graceSeconds; fine if already stopped. */
  stop(name: string, graceSeconds: number): Promise<void>;
  /** Force-removes; fine if already gone. */
  remove(name: string): Promise<void>;
  exec(name: string, cmd: string[], timeoutMs: number): Promise<ExecResult>;
  /** The last `lines` lines of stdout and stderr, interleaved, at most a few KiB; '' when gone. */
  logTail(name: string, lines: number): Promise<string>;
  /**
   * The container's stdout and stderr as timestamped lines, pulled (see container-log-lines.ts);
   * ERR_CONTAINER_NOT_FOUND when there is no such container. `signal` ends the stream.
   */
  logs(name: string, options: ReplicaLogOptions, signal: AbortSignal): AsyncIterable<ReplicaLogLine>;
  /**
   * Lifecycle events of managed containers, as they happen. The subscription reconnects by itself
   * when the engine's event stream breaks; `onReconnect` lets the caller re-read state it may
   * have missed meanwhile.
   */
  watchManagedEvents(onEvent: (event: RuntimeEvent) => void, onReconnect?: () => void): Subscription;
}
