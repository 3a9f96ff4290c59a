/**
 * The one ContainerRuntime implementation: a Docker engine over its API socket (dockerode).
 * This file is the only place in berth that knows Docker's API shapes.
 */
import { PassThrough, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import { connectDocker } from './docker-client.js';
import { InspectCache } from './inspect-cache.js';
import { BerthError } from '../core/errors.js';
import type { ContainerState, PublishedPort, ReplicaLogLine, ReplicaLogOptions } from '../api/types.js';
import { demultiplexLogLines } from './container-log-lines.js';
import { LABELS } from '../api/types.js';
import type {
  ContainerCreateSpec,
  ContainerRuntime,
  EngineInfo,
  ExecResult,
  RuntimeContainer,
  RuntimeVolume,
  RuntimeEvent,
  Subscription,
} from './runtime.js';

const DEFAULT_SOCKET = '/var/run/docker.sock';
const EXEC_OUTPUT_LIMIT = 4096;
const EVENTS_RECONNECT_MS = 1000;
const CONTAINER_STATES: readonly ContainerState[] = [
  'created',
  'running',
  'restarting',
  'paused',
  'exited',
  'dead',
  'removing',
];
/** Docker reports "never" as the zero time. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface DockerRuntimeOptions {
  /** A socket path or `unix://` URL; default: DOCKER_HOST when it is `unix://...`, else /var/run/docker.sock. */
  socketPath?: string;
}

/** The socket the runtime will use, for messages and for `berth agent --docker`. */
export function resolveDockerSocket(socketPath?: string): string {
  const explicit = socketPath ?? process.env['DOCKER_HOST'];
  if (explicit === undefined || explicit === '') return DEFAULT_SOCKET;
  if (explicit.startsWith('unix://')) return explicit.slice('unix://'.length);
  if (explicit.includes('://')) {
    throw new BerthError(
      'ERR_NOT_SUPPORTED',
      `only unix sockets are supported for the Docker engine, got ${explicit} (use --docker /path/to/docker.sock)`,
    );
  }
  return explicit;
}

/** What every engine call shares: the client and how its failures become BerthErrors. */
interface DockerContext {
  docker: Docker;
  fail: (error: unknown, action: string) => BerthError;
  inspections: InspectCache;
}

export function createDockerRuntime(options: DockerRuntimeOptions = {}): ContainerRuntime {
  const socketPath = resolveDockerSocket(options.socketPath);
  const where = `unix://${socketPath}`;
  const context: DockerContext = {
    docker: connectDocker(socketPath),
    fail: (error, action) => dockerError(error, action, where),
    inspections: new InspectCache(),
  };
  // A change berth makes forgets the cached inspections before it starts and once it is done.
  const changing = <T>(change: () => Promise<T>): Promise<T> => {
    context.inspections.forget();
    return change().finally(() => context.inspections.forget());
  };
  return {
    ping: () => ping(context),
    info: () => engineInfo(context),
    listImages: () => listImages(context),
    listManaged: () => listManaged(context),
    listManagedVolumes: (options) => listManagedVolumes(context, options?.withSizes ?? false),
    removeVolume: (name) => removeVolume(context, name),
    inspect: (name) => inspect(context, name),
    hasImage: (ref) => hasImage(context, ref),
    pullImage: (ref) => pullImage(context, ref),
    create: (spec) => changing(() => create(context, spec)),
    start: (name) => changing(() => start(context, name)),
    stop: (name, graceSeconds) => changing(() => stop(context, name, graceSeconds)),
    remove: (name) => changing(() => remove(context, name)),
    exec: (name, cmd, timeoutMs) => exec(context, name, cmd, timeoutMs),
    logTail: (name, lines) => logTail(context, name, lines),
    logs: (name, logOptions, signal) => containerLogs(context, name, logOptions, signal),
    watchManagedEvents: (onEvent, onReconnect) => watchManagedEvents(context, onEvent, onReconnect),
  };
}

async function ping({ docker, fail }: DockerContext): Promise<void> {
  try {
    await docker.ping();
  } catch (error) {
    throw fail(error, 'ping');
  }
}

async function engineInfo({ docker, fail }: DockerContext): Promise<EngineInfo> {
  try {
    const info = (await docker.info()) as {
      NCPU?: number;
      MemTotal?: number;
      ServerVersion?: string;
      Name?: string;
    };
    return {
      cpus: info.NCPU ?? 0,
      memoryBytes: info.MemTotal ?? 0,
      engineVersion: info.ServerVersion ?? 'unknown',
      hostname: info.Name ?? 'unknown',
    };
  } catch (error) {
    throw fail(error, 'read engine info');
  }
}

async function listImages({ docker, fail }: DockerContext): Promise<string[]> {
  try {
    const images = await docker.listImages();
    return images
      .flatMap((image) => image.RepoTags ?? [])
      .filter((tag) => tag !== '<none>:<none>')
      .sort();
  } catch (error) {
    throw fail(error, 'list images');
  }
}

async function listManaged(context: DockerContext): Promise<RuntimeContainer[]> {
  let summaries: Docker.ContainerInfo[];
  try {
    summaries = await context.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.managed}=true`] },
    });
  } catch (error) {
    throw context.fail(error, 'list containers');
  }
  const { inspections } = context;
  inspections.retainOnly(new Set(summaries.map((summary) => summary.Id)));
  const containers = await Promise.all(
    summaries.map(async (summary) => {
      const reused = inspections.reuse({ id: summary.Id, names: summary.Names, state: summary.State });
      // A copy: the caller owns what it is given.
      if (reused !== undefined) return structuredClone(reused);
      const mark = inspections.mark();
      const container = await inspect(context, summary.Id);
      if (container !== null) inspections.keep(structuredClone(container), mark);
      return container;
    }),
  );
  // A container removed between the list and its inspect is simply gone.
  return containers.filter((container): container is RuntimeContainer => container !== null);
}

async function listManagedVolumes(context: DockerContext, withSizes: boolean): Promise<RuntimeVolume[]> {
  const { docker, fail } = context;
  let volumes: Docker.VolumeInspectInfo[];
  try {
    const listed = await docker.listVolumes({ filters: { label: [`${LABELS.managed}=true`] } });
    volumes = listed.Volumes ?? [];
  } catch (error) {
    throw fail(error, 'list volumes');
  }
  const sizes = new Map<string, number>();
  if (withSizes && volumes.length > 0) {
    try {
      const usage = (await docker.df()) as { Volumes?: { Name: string; UsageData?: { Size?: number } }[] };
      // -1: the engine does not know (drivers other than local).
      for (const v of usage.Volumes ?? []) {
        const size = v.UsageData?.Size;
        if (size !== undefined && size >= 0) sizes.set(v.Name, size);
      }
    } catch (error) {
      throw fail(error, 'read disk usage');
    }
  }
  return volumes
    .map((v) => ({
      name: v.Name,
      driver: v.Driver,
      labels: { ...v.Labels },
      sizeBytes: sizes.get(v.Name) ?? null,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function removeVolume({ docker, fail }: DockerContext, name: string): Promise<void> {
  try {
    await docker.getVolume(name).remove();
  } catch (error) {
    if (statusOf(error) === 404) return;
    throw fail(error, `remove volume ${name}`);
  }
}

async function inspect({ docker, fail }: DockerContext, name: string): Promise<RuntimeContainer | null> {
  try {
    return toRuntimeContainer(await docker.getContainer(name).inspect());
  } catch (error) {
    if (statusOf(error) === 404) return null;
    throw fail(error, `inspect container ${name}`);
  }
}

async function hasImage({ docker, fail }: DockerContext, ref: string): Promise<boolean> {
  try {
    await docker.getImage(ref).inspect();
    return true;
  } catch (error) {
    if (statusOf(error) === 404) return false;
    throw fail(error, `inspect image ${ref}`);
  }
}

async function pullImage(context: DockerContext, ref: string): Promise<void> {
  const { docker } = context;
  if (await hasImage(context, ref)) return;
  try {
    const stream = await docker.pull(ref);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (error: Error | null, output: { error?: string }[]) => {
        const failed = error?.message ?? output.find((line) => line.error !== undefined)?.error;
        if (failed === undefined) resolve();
        else reject(new Error(failed));
      });
    });
  } catch (error) {
    if (isConnectionError(error)) throw context.fail(error, `pull image ${ref}`);
    throw new BerthError(
      'ERR_IMAGE_NOT_FOUND',
      `image ${ref} is not present on the node and could not be pulled: ${messageOf(error)}`,
      { data: { image: ref }, cause: error },
    );
  }
  if (!(await hasImage(context, ref))) {
    throw new BerthError('ERR_IMAGE_NOT_FOUND', `image ${ref} is still missing after a pull`, {
      data: { image: ref },
    });
  }
}

async function create({ docker, fail }: DockerContext, spec: ContainerCreateSpec): Promise<string> {
  try {
    const container = await docker.createContainer(toCreateOptions(spec));
    return container.id;
  } catch (error) {
    if (statusOf(error) === 404) {
      throw new BerthError('ERR_IMAGE_NOT_FOUND', `image ${spec.image} is not present on the node`, {
        data: { image: spec.image },
        cause: error,
      });
    }
    throw fail(error, `create container ${spec.name}`);
  }
}

async function start({ docker, fail }: DockerContext, name: string): Promise<void> {
  try {
    await docker.getContainer(name).start();
  } catch (error) {
    // 304: already running.
    if (statusOf(error) === 304) return;
    throw fail(error, `start container ${name}`);
  }
}

async function stop({ docker, fail }: DockerContext, name: string, graceSeconds: number): Promise<void> {
  try {
    await docker.getContainer(name).stop({ t: Math.max(0, Math.ceil(graceSeconds)) });
  } catch (error) {
    const status = statusOf(error);
    // 304: not running; 404: already gone. Both mean "stopped", which is what was asked.
    if (status === 304 || status === 404) return;
    throw fail(error, `stop container ${name}`);
  }
}

async function remove({ docker, fail }: DockerContext, name: string): Promise<void> {
  try {
    await docker.getContainer(name).remove({ force: true, v: true });
  } catch (error) {
    const status = statusOf(error);
    // 404: gone; 409 "removal already in progress": someone else is finishing the job.
    if (status === 404 || (status === 409 && /already in progress/i.test(messageOf(error)))) return;
    throw fail(error, `remove container ${name}`);
  }
}

async function exec(
  { docker, fail }: DockerContext,
  name: string,
  cmd: string[],
  timeoutMs: number,
): Promise<ExecResult> {
  let stream: Readable;
  let started: Docker.Exec;
  try {
    started = await docker.getContainer(name).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    stream = await started.start({ hijack: true, stdin: false });
  } catch (error) {
    throw fail(error, `exec in container ${name}`);
  }
  let output = '';
  const collector = new PassThrough();
  collector.on('data', (chunk: Buffer) => {
    if (output.length < EXEC_OUTPUT_LIMIT)
      output += chunk.toString('utf8').slice(0, EXEC_OUTPUT_LIMIT - output.length);
  });
  docker.modem.demuxStream(stream, collector, collector);
  if (!(await endedWithin(stream, timeoutMs))) return { exitCode: null, output };
  try {
    const result = await started.inspect();
    return { exitCode: result.Running ? null : result.ExitCode, output };
  } catch (error) {
    throw fail(error, `inspect exec in container ${name}`);
  }
}

/** The last `lines` lines of a container's output, through the same reader as `berth logs`. */
async function logTail(context: DockerContext, name: string, lines: number): Promise<string> {
  const text: string[] = [];
  try {
    for await (const line of containerLogs(context, name, { tail: lines }, AbortSignal.timeout(30_000)))
      text.push(line.text);
  } catch (error) {
    if (error instanceof BerthError && error.code === 'ERR_CONTAINER_NOT_FOUND') return '';
    throw error;
  }
  return text.length === 0 ? '' : `${text.join('\n')}\n`.slice(-EXEC_OUTPUT_LIMIT);
}

/**
 * GET /containers/:name/logs as a stream even without `follow` (dockerode's own `logs` buffers a
 * whole log in memory then), timestamps on: every line says when it was written.
 */
async function* containerLogs(
  { docker, fail }: DockerContext,
  name: string,
  options: ReplicaLogOptions,
  signal: AbortSignal,
): AsyncGenerator<ReplicaLogLine> {
  let raw: Readable;
  try {
    raw = await new Promise<Readable>((resolve, reject) => {
      docker.modem.dial(
        {
          path: `/containers/${encodeURIComponent(name)}/logs?`,
          method: 'GET',
          abortSignal: signal,
          isStream: true,
          statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
          options: {
            stdout: true,
            stderr: true,
            timestamps: true,
            follow: options.follow === true,
            // Docker takes fractions of a second as `seconds.nanoseconds`.
            ...(options.sinceSeconds === undefined ? {} : { since: options.sinceSeconds.toFixed(9) }),
            ...(options.tail === undefined ? {} : { tail: String(options.tail) }),
          },
        },
        (error: Error | null, stream: unknown) => (error ? reject(error) : resolve(stream as Readable)),
      );
    });
  } catch (error) {
    throw fail(error, `read the logs of container ${name}`);
  }
  try {
    yield* demultiplexLogLines(raw);
  } catch (error) {
    if (signal.aborted) return;
    throw fail(error, `read the logs of container ${name}`);
  } finally {
    raw.destroy();
  }
}

/** false when the stream did not end in time (and was dropped). */
function endedWithin(stream: Readable, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      // Docker has no way to kill an exec'd process; dropping the stream is all we can do.
      stream.destroy();
      resolve(false);
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
  });
}

function watchManagedEvents(
  { docker, inspections }: DockerContext,
  onEvent: (event: RuntimeEvent) => void,
  onReconnect?: () => void,
): Subscription {
  let closed = false;
  let stream: Readable | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let connectedBefore = false;
  let markConnected = () => {};
  // Whether this subscription counts as an open stream for the cached inspections.
  let open = false;
  const setOpen = (now: boolean) => {
    if (open === now) return;
    open = now;
    if (now) inspections.streamOpened();
    else inspections.streamClosed();
  };
  const connected = new Promise<void>((resolve) => (markConnected = resolve));

  const scheduleReconnect = () => {
    if (closed || retryTimer !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void connect();
    }, EVENTS_RECONNECT_MS);
  };

  const connect = async () => {
    if (closed) return;
    let opened: Readable;
    try {
      opened = (await docker.getEvents({
        filters: {
          type: ['container'],
          label: [`${LABELS.managed}=true`],
          event: ['start', 'die', 'destroy'],
        },
      })) as Readable;
    } catch {
      scheduleReconnect();
      return;
    }
    if (closed) {
      opened.destroy();
      return;
    }
    stream = opened;
    setOpen(true);
    if (connectedBefore) onReconnect?.();
    connectedBefore = true;
    markConnected();
    const forwarded = (event: RuntimeEvent) => {
      inspections.forget();
      onEvent(event);
    };
    forwardEvents(opened, forwarded, () => {
      setOpen(false);
      stream = null;
      scheduleReconnect();
    });
  };

  void connect();
  return {
    connected,
    close() {
      closed = true;
      setOpen(false);
      markConnected();
      if (retryTimer !== null) clearTimeout(retryTimer);
      stream?.destroy();
      stream = null;
    },
  };
}

/** Docker's event stream is newline-delimited JSON, split anywhere across chunks. */
function forwardEvents(stream: Readable, onEvent: (event: RuntimeEvent) => void, onBroken: () => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      const event = line === '' ? null : parseEvent(line);
      if (event !== null) onEvent(event);
    }
  });
  stream.once('end', onBroken);
  stream.once('error', onBroken);
}

function toCreateOptions(spec: ContainerCreateSpec): Docker.ContainerCreateOptions {
  const exposedPorts: Record<string, object> = {};
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const binding of spec.ports) {
    const key = `${binding.port}/${binding.protocol}`;
    exposedPorts[key] = {};
    // An empty HostPort asks the engine for an ephemeral port on that address.
    portBindings[key] = [{ HostIp: binding.hostIp, HostPort: '' }];
  }
  const options: Docker.ContainerCreateOptions = {
    name: spec.name,
    Image: spec.image,
    Env: Object.entries(spec.env)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => `${key}=${value}`),
    Labels: spec.labels,
    ExposedPorts: exposedPorts,
    StopTimeout: spec.stopTimeoutSeconds,
    HostConfig: {
      PortBindings: portBindings,
      NanoCpus: spec.nanoCpus,
      Memory: spec.memoryBytes,
      RestartPolicy: {
        Name: spec.restart.policy,
        MaximumRetryCount: spec.restart.policy === 'on-failure' ? spec.restart.maxRetries : 0,
      },
      Init: spec.init,
      ...(spec.dns
        ? { Dns: spec.dns.servers, DnsSearch: spec.dns.search, DnsOptions: spec.dns.options }
        : {}),
      Mounts: [
        ...spec.mounts.map((mount) => ({
          Type: 'bind' as const,
          Source: mount.source,
          Target: mount.target,
          ReadOnly: mount.readOnly,
        })),
        // The engine creates a missing volume with these labels and driver; an existing one is
        // mounted as it is (its driver and labels are never changed).
        ...spec.volumes.map((mount) => ({
          Type: 'volume' as const,
          Source: mount.source,
          Target: mount.target,
          ReadOnly: mount.readOnly,
          VolumeOptions: {
            NoCopy: false,
            Labels: mount.labels,
            DriverConfig: { Name: mount.driver, Options: mount.driverOptions },
          },
        })),
      ],
      ...securityHostConfig(spec),
    },
  };
  // Docker drops the image's CMD whenever Entrypoint is set, which is exactly Kubernetes'
  // command/args rule: command without args runs the command alone.
  if (spec.entrypoint !== null) options.Entrypoint = spec.entrypoint;
  if (spec.cmd !== null) options.Cmd = spec.cmd;
  if (spec.user !== null) options.User = spec.user;
  if (spec.workingDir !== null) options.WorkingDir = spec.workingDir;
  return options;
}

function securityHostConfig(spec: ContainerCreateSpec): Docker.HostConfig {
  const { security } = spec;
  return {
    SecurityOpt: security.noNewPrivileges ? ['no-new-privileges:true'] : [],
    ReadonlyRootfs: security.readOnlyRootFilesystem,
    CapDrop: security.capDrop,
    CapAdd: security.capAdd,
    Tmpfs: Object.fromEntries(spec.tmpfs.map((mount) => [mount.target, mount.options])),
  };
}

function toRuntimeContainer(info: Docker.ContainerInspectInfo): RuntimeContainer {
  const status = info.State.Status as ContainerState;
  const state: ContainerState = CONTAINER_STATES.includes(status) ? status : 'dead';
  const finishedAt =
    info.State.FinishedAt === ZERO_TIME || info.State.FinishedAt === '' ? null : info.State.FinishedAt;
  const startedAt =
    info.State.StartedAt === ZERO_TIME || info.State.StartedAt === '' ? null : info.State.StartedAt;
  const ports: PublishedPort[] = [];
  for (const [key, bindings] of Object.entries(info.NetworkSettings.Ports ?? {})) {
    const [port, protocol] = key.split('/');
    for (const binding of bindings ?? []) {
      // Docker lists IPv4 and IPv6 bindings of a wildcard publish separately; keep both.
      ports.push({
        target: Number(port),
        protocol: protocol === 'udp' ? 'udp' : 'tcp',
        hostIp: binding.HostIp,
        hostPort: Number(binding.HostPort),
      });
    }
  }
  // The default bridge's address first: the one berth's containers are attached to.
  const networks = info.NetworkSettings.Networks ?? {};
  const address = (networks['bridge'] ?? Object.values(networks).find((n) => n.IPAddress))?.IPAddress;
  return {
    ...(address ? { address } : {}),
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    labels: info.Config.Labels ?? {},
    state,
    exitCode: state === 'running' || finishedAt === null ? null : info.State.ExitCode,
    oomKilled: info.State.OOMKilled,
    error: info.State.Error === '' ? null : info.State.Error,
    restartCount: info.RestartCount,
    createdAt: info.Created,
    startedAt,
    finishedAt,
    ports,
  };
}

function parseEvent(line: string): RuntimeEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  if (raw === null || typeof raw !== 'object') return null;
  const event = raw as {
    Action?: string;
    status?: string;
    Actor?: { ID?: string; Attributes?: Record<string, string> };
  };
  const action = event.Action ?? event.status;
  if (action !== 'start' && action !== 'die' && action !== 'destroy') return null;
  const attributes = event.Actor?.Attributes ?? {};
  const exitCode = attributes['exitCode'];
  return {
    kind: action,
    id: event.Actor?.ID ?? '',
    name: attributes['name'] ?? '',
    exitCode: exitCode === undefined ? null : Number(exitCode),
  };
}

function statusOf(error: unknown): number | undefined {
  if (error !== null && typeof error === 'object' && 'statusCode' in error) {
    const status = error.statusCode;
    return typeof status === 'number' ? status : undefined;
  }
  return undefined;
}

function messageOf(error: unknown): string {
  if (error !== null && typeof error === 'object') {
    const json = (error as { json?: unknown }).json;
    if (
      json !== null &&
      typeof json === 'object' &&
      typeof (json as { message?: unknown }).message === 'string'
    ) {
      return (json as { message: string }).message;
    }
    if (error instanceof Error) return error.message;
  }
  return String(error);
}

function isConnectionError(error: unknown): boolean {
  const code = error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
  return (
    code === 'ENOENT' ||
    code === 'ECONNREFUSED' ||
    code === 'EACCES' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE'
  );
}

function dockerError(error: unknown, action: string, where: string): BerthError {
  if (error instanceof BerthError) return error;
  if (isConnectionError(error)) {
    return new BerthError(
      'ERR_DOCKER_UNAVAILABLE',
      `cannot reach the Docker engine at ${where}: ${messageOf(error)}`,
      {
        cause: error,
      },
    );
  }
  const status = statusOf(error);
  const detail = `docker could not ${action}: ${messageOf(error)}`;
  if (status === 400) return new BerthError('ERR_BAD_REQUEST', detail, { cause: error });
  if (status === 404) return new BerthError('ERR_CONTAINER_NOT_FOUND', detail, { cause: error });
  if (status === 409) return new BerthError('ERR_STATE', detail, { cause: error });
  return new BerthError('ERR_INTERNAL', detail, { cause: error });
}
