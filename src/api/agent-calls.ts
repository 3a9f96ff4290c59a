/**
 * The one contract of the agent calls, whichever transport carries them: the HTTP agent API
 * (src/agent/server.ts and client.ts) and the cluster's WebSocket RPC (src/cluster). For each
 * NodeAgent method, the schema of its parameters, which every server checks before the agent sees
 * the call, and how long a client waits for the answer:
 *
 *   call           parameters                                   a client gives up after
 *   snapshot       ()                                           30 s
 *   ensureReplica  (request: ReplicaRequest)                    15 min (may pull an image)
 *   prepareReplica (request: ReplicaRequest)                    15 min (may pull an image)
 *   awaitReplica   (name, { timeoutMs: 1..240 000 })            timeoutMs + 30 s
 *   watchReplica   (name, { durationMs: 1..240 000 })           durationMs + 30 s
 *   removeReplica  (name)                                       15 min (waits out a stop grace period)
 *   setMeshRoutes  (table: MeshRoutes, { drainTimeoutMs: 0..240 000 })  drainTimeoutMs + 30 s
 *   logs           (name, { sinceSeconds?, tail?: 0..100 000, follow? })  a stream of lines (below)
 *
 * `logs` is the one call that answers with a stream of ReplicaLogLine rather than one value: the
 * HTTP agent answers it with NDJSON, the cluster RPC with chunk messages under flow control (see
 * src/cluster/rpc-protocol.ts). A stream that has sent nothing, not even a keep-alive, for
 * LOG_STREAM_IDLE_MS is given up.
 *   listVolumes    ()                                           5 min (the engine walks every volume)
 *   awaitChange    (since: string | null, { timeoutMs: 1..240 000 })  timeoutMs + 30 s
 *   removeVolume   (name: berth.*)                              30 s
 *
 * A longer wait is split by the client into calls of at most MAX_CALL_WAIT_MS (waitInCalls), so no
 * call stays silent for longer than HTTP stacks tolerate. A call that breaks its schema, or names
 * no call at all, is refused with ERR_BAD_REQUEST and a message naming the field.
 */
import type { Ajv, Options, ValidateFunction } from 'ajv';
import { BerthError } from '../core/errors.js';
import {
  contentStamp,
  createAjv,
  loadPrebuiltValidators,
  prebuiltValidatorsModule,
} from '../core/prebuilt-validators.js';
import {
  ADDABLE_CAPABILITIES,
  ALL_CAPABILITIES,
  LINUX_CAPABILITIES,
} from '../manifests/linux-capabilities.js';
import { describeSchemaErrors } from '../manifests/schema-errors.js';
import type { NodeAgent, ReplicaLogLine, ReplicaWaitResult } from './types.js';

/**
 * The longest single wait of one call. HTTP clients and proxies give up on a silent response
 * after a few minutes (undici: 300 s), so a client splits longer waits into calls of at most this.
 */
export const MAX_CALL_WAIT_MS = 240_000;
/** A snapshot reads the engine (info, images, every managed container). */
const SNAPSHOT_TIMEOUT_MS = 30_000;
/** Creating a replica may pull an image; removing one waits out its stop grace period. */
const SLOW_CALL_TIMEOUT_MS = 15 * 60_000;
/** Sizes of volumes: `docker system df` walks every file of every volume. */
const VOLUME_SIZES_TIMEOUT_MS = 5 * 60_000;
/** Head-room on top of a call's own wait before the client gives up on the answer. */
const WAIT_SLACK_MS = 30_000;
/** A log stream sends a keep-alive at least this often while its replica is silent... */
export const LOG_KEEPALIVE_MS = 15_000;
/** ...and is given up when nothing at all came for this long. */
export const LOG_STREAM_IDLE_MS = 60_000;
/** `tail` of a logs call: enough for any terminal, and bounded so a call cannot ask for everything at once. */
export const MAX_LOG_TAIL = 100_000;

export const AGENT_CALL_NAMES = [
  'snapshot',
  'ensureReplica',
  'prepareReplica',
  'awaitReplica',
  'watchReplica',
  'removeReplica',
  'setMeshRoutes',
  'logs',
  'listVolumes',
  'removeVolume',
  'awaitChange',
] as const;
export type AgentCallName = (typeof AGENT_CALL_NAMES)[number];

/** The parameters of each call, positional as in NodeAgent. */
export type AgentCallParams = { [K in AgentCallName]: Parameters<NodeAgent[K]> };
export type AgentCall = { [K in AgentCallName]: { method: K; params: AgentCallParams[K] } }[AgentCallName];

interface AgentCallContract<K extends AgentCallName> {
  /** The schema of each positional parameter, by the name messages use for it. */
  params: readonly (readonly [name: string, schema: object])[];
  timeoutMs(params: AgentCallParams[K]): number;
}

const REPLICA_NAME = { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$' } as const;
/** Service and namespace names end up in DNS answers: labels only. */
const DNS_LABEL = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' } as const;
const PORT = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const stringArrayOrNull = { type: ['array', 'null'], items: { type: 'string' } } as const;
const stringOrNull = { type: ['string', 'null'] } as const;

const waitOption = (field: string, minimum: number) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: [field],
    properties: { [field]: { type: 'integer', minimum, maximum: MAX_CALL_WAIT_MS } },
  }) as const;

const healthcheckSchema = {
  type: ['object', 'null'],
  required: ['probe', 'intervalMs', 'timeoutMs', 'retries', 'startPeriodMs'],
  properties: {
    probe: {
      type: 'object',
      required: ['type'],
      properties: {
        type: { enum: ['http', 'tcp', 'exec'] },
        port: PORT,
        path: { type: 'string' },
        expectStatus: { type: 'array', items: { type: 'integer' } },
        command: { type: 'array', items: { type: 'string' } },
      },
    },
    intervalMs: { type: 'integer', minimum: 1 },
    timeoutMs: { type: 'integer', minimum: 1 },
    retries: { type: 'integer', minimum: 0 },
    startPeriodMs: { type: 'integer', minimum: 0 },
  },
} as const;

const replicaFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['target', 'mode', 'uid', 'gid', 'contentBase64', 'secret'],
  properties: {
    target: { type: 'string', minLength: 2 },
    mode: { type: 'integer', minimum: 0, maximum: 0o7777 },
    uid: { type: 'integer', minimum: 0 },
    gid: { type: 'integer', minimum: 0 },
    contentBase64: { type: 'string' },
    secret: { type: 'boolean' },
  },
} as const;

/** An absolute, normalised path, never "/" itself: a mount cannot climb out with "..". */
const MOUNT_TARGET = {
  type: 'string',
  maxLength: 4096,
  pattern: '^(/[^/\\u0000]+)+$',
  not: { pattern: '(^|/)\\.\\.?(/|$)' },
} as const;

/** Only berth's own volumes: a call can neither mount nor remove another volume of the node. */
const VOLUME_NAME = { type: 'string', maxLength: 255, pattern: '^berth\\.[a-z0-9][a-zA-Z0-9_.-]*$' } as const;

const replicaVolumeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'volume', 'target', 'readOnly', 'driver', 'driverOptions'],
  properties: {
    source: VOLUME_NAME,
    volume: DNS_LABEL,
    target: MOUNT_TARGET,
    readOnly: { type: 'boolean' },
    driver: { type: 'string', minLength: 1 },
    driverOptions: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

/**
 * A ReplicaRequest. Properties a schema does not list are dropped (removeAdditional), so a newer
 * operator's extra fields do not break an older agent.
 */
const replicaRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'name',
    'namespace',
    'service',
    'slot',
    'specHash',
    'revision',
    'image',
    'command',
    'args',
    'env',
    'ports',
    'files',
    'healthcheck',
    'limits',
    'restart',
    'stopGracePeriodMs',
    'user',
    'workingDir',
    'init',
    'specSummary',
  ],
  properties: {
    name: REPLICA_NAME,
    namespace: { type: 'string', minLength: 1 },
    service: { type: 'string', minLength: 1 },
    slot: { type: 'string', minLength: 1 },
    specHash: { type: 'string', minLength: 1 },
    revision: { type: 'string' },
    image: { type: 'string', minLength: 1 },
    command: stringArrayOrNull,
    args: stringArrayOrNull,
    env: { type: 'object', additionalProperties: { type: 'string' } },
    ports: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['target', 'protocol'],
        properties: { target: PORT, protocol: { enum: ['tcp', 'udp'] } },
      },
    },
    files: { type: 'array', items: replicaFileSchema },
    healthcheck: healthcheckSchema,
    limits: {
      type: 'object',
      required: ['nanoCpus', 'memoryBytes'],
      properties: { nanoCpus: { type: 'integer', minimum: 0 }, memoryBytes: { type: 'integer', minimum: 0 } },
    },
    restart: {
      type: 'object',
      required: ['condition', 'maxAttempts'],
      properties: {
        condition: { enum: ['any', 'on-failure', 'none'] },
        maxAttempts: { type: 'integer', minimum: 0 },
      },
    },
    stopGracePeriodMs: { type: 'integer', minimum: 0 },
    user: stringOrNull,
    readOnlyRootFilesystem: { type: 'boolean' },
    // The agent holds to the manifest's allowlist too: a call cannot give a container a
    // capability that reaches the host, whoever makes it.
    capabilities: {
      type: 'object',
      additionalProperties: false,
      required: ['drop', 'add'],
      properties: {
        drop: { type: 'array', items: { enum: [ALL_CAPABILITIES, ...LINUX_CAPABILITIES] } },
        add: { type: 'array', items: { enum: [...ADDABLE_CAPABILITIES] } },
      },
    },
    workingDir: stringOrNull,
    init: { type: 'boolean' },
    volumes: { type: 'array', items: replicaVolumeSchema },
    tmpfs: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['target', 'sizeBytes'],
        properties: { target: MOUNT_TARGET, sizeBytes: { type: 'integer', minimum: 0 } },
      },
    },
    specSummary: { type: 'object' },
    job: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'attempt'],
      properties: { name: DNS_LABEL, attempt: { type: 'integer', minimum: 1 }, cronJob: DNS_LABEL },
    },
  },
} as const;

const backendsSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['id', 'host', 'port'],
    properties: {
      id: { type: 'string', minLength: 1 },
      host: { type: 'string', minLength: 1 },
      port: PORT,
      local: {
        type: 'object',
        additionalProperties: false,
        required: ['host', 'port'],
        properties: { host: { type: 'string', minLength: 1 }, port: PORT },
      },
    },
  },
} as const;

const meshRoutesSchema = {
  type: 'object',
  required: ['version', 'routes'],
  properties: {
    version: { type: 'number' },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['service', 'published', 'protocol', 'backends'],
        properties: {
          service: { type: 'string' },
          published: PORT,
          protocol: { enum: ['tcp'] },
          appProtocol: { enum: ['tcp', 'http'] },
          backends: backendsSchema,
        },
      },
    },
    services: {
      type: 'array',
      items: {
        type: 'object',
        required: ['namespace', 'name', 'ports'],
        properties: {
          namespace: DNS_LABEL,
          name: DNS_LABEL,
          ports: {
            type: 'array',
            items: {
              type: 'object',
              required: ['target', 'backends'],
              properties: { target: PORT, appProtocol: { enum: ['tcp', 'http'] }, backends: backendsSchema },
            },
          },
        },
      },
    },
  },
} as const;

export const AGENT_CALLS: { [K in AgentCallName]: AgentCallContract<K> } = {
  snapshot: { params: [], timeoutMs: () => SNAPSHOT_TIMEOUT_MS },
  ensureReplica: { params: [['request', replicaRequestSchema]], timeoutMs: () => SLOW_CALL_TIMEOUT_MS },
  prepareReplica: { params: [['request', replicaRequestSchema]], timeoutMs: () => SLOW_CALL_TIMEOUT_MS },
  awaitReplica: {
    params: [
      ['name', REPLICA_NAME],
      ['options', waitOption('timeoutMs', 1)],
    ],
    timeoutMs: ([, { timeoutMs }]) => timeoutMs + WAIT_SLACK_MS,
  },
  watchReplica: {
    params: [
      ['name', REPLICA_NAME],
      ['options', waitOption('durationMs', 1)],
    ],
    timeoutMs: ([, { durationMs }]) => durationMs + WAIT_SLACK_MS,
  },
  removeReplica: { params: [['name', REPLICA_NAME]], timeoutMs: () => SLOW_CALL_TIMEOUT_MS },
  setMeshRoutes: {
    params: [
      ['table', meshRoutesSchema],
      ['options', waitOption('drainTimeoutMs', 0)],
    ],
    timeoutMs: ([, { drainTimeoutMs }]) => drainTimeoutMs + WAIT_SLACK_MS,
  },
  logs: {
    params: [
      ['name', REPLICA_NAME],
      [
        'options',
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            sinceSeconds: { type: 'number', minimum: 0 },
            tail: { type: 'integer', minimum: 0, maximum: MAX_LOG_TAIL },
            follow: { type: 'boolean' },
          },
        },
      ],
    ],
    timeoutMs: () => LOG_STREAM_IDLE_MS,
  },
  listVolumes: { params: [], timeoutMs: () => VOLUME_SIZES_TIMEOUT_MS },
  removeVolume: { params: [['name', VOLUME_NAME]], timeoutMs: () => SNAPSHOT_TIMEOUT_MS },
  awaitChange: {
    params: [
      ['since', { type: ['string', 'null'], maxLength: 200 }],
      ['options', waitOption('timeoutMs', 1)],
    ],
    timeoutMs: ([, { timeoutMs }]) => timeoutMs + WAIT_SLACK_MS,
  },
};

export function isAgentCallName(value: unknown): value is AgentCallName {
  return typeof value === 'string' && (AGENT_CALL_NAMES as readonly string[]).includes(value);
}

/** How long a client waits for the answer to `call`. */
export function agentCallTimeoutMs<K extends AgentCallName>(method: K, params: AgentCallParams[K]): number {
  const contract: AgentCallContract<K> = AGENT_CALLS[method];
  return contract.timeoutMs(params);
}

const AJV_OPTIONS: Options = {
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  verbose: true,
  removeAdditional: true,
};

/** A call's parameters as an object keyed by their names. */
function callSchema(name: AgentCallName): Record<string, unknown> {
  const params = AGENT_CALLS[name].params;
  return {
    type: 'object',
    additionalProperties: false,
    required: params.map(([param]) => param),
    properties: Object.fromEntries(params),
  };
}

function callsAjv(forBuild: boolean): Ajv {
  const ajv = createAjv(AJV_OPTIONS, forBuild);
  for (const name of AGENT_CALL_NAMES) ajv.addSchema(callSchema(name), name);
  return ajv;
}

const CALLS_STAMP = contentStamp([AJV_OPTIONS, AGENT_CALL_NAMES.map(callSchema)]);

/**
 * The ES module of every call's validator, written by the build beside this module
 * (scripts/build-validators.mjs; src/core/prebuilt-validators.ts says why): an agent then never
 * loads ajv's compiler.
 */
export function agentCallValidatorsModule(): string {
  return prebuiltValidatorsModule(callsAjv(true), AGENT_CALL_NAMES, CALLS_STAMP);
}

const prebuilt = await loadPrebuiltValidators(
  new URL('./agent-call-validators.js', import.meta.url),
  AGENT_CALL_NAMES,
  CALLS_STAMP,
);
let compiled: Ajv | undefined;

/** One validator per call: the built one, else compiled here on first use. */
export function agentCallValidator(name: AgentCallName): ValidateFunction {
  const built = prebuilt?.get(name);
  if (built !== undefined) return built;
  compiled ??= callsAjv(false);
  const validate = compiled.getSchema(name);
  if (validate === undefined) throw new Error(`no schema for the agent call ${name}`);
  return validate;
}

/**
 * A call as it arrived on the wire (a method name and positional parameters) checked against the
 * contract; ERR_BAD_REQUEST naming what is wrong otherwise. Unlisted properties of parameters are
 * dropped from the parameters in place.
 */
export function parseAgentCall(method: unknown, params: unknown): AgentCall {
  if (!isAgentCallName(method)) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `bad request: unknown agent call ${JSON.stringify(method) ?? 'undefined'} (calls: ${AGENT_CALL_NAMES.join(', ')})`,
    );
  }
  if (!Array.isArray(params)) {
    throw new BerthError('ERR_BAD_REQUEST', `bad request: the parameters of ${method} must be a list`);
  }
  const names = AGENT_CALLS[method].params.map(([name]) => name);
  if (params.length > names.length) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `bad request: ${method} takes ${names.length} parameter(s) (${names.join(', ')}), got ${params.length}`,
    );
  }
  const named = Object.fromEntries(
    names.flatMap((name, index): [string, unknown][] =>
      params[index] === undefined ? [] : [[name, params[index] as unknown]],
    ),
  );
  const validate = agentCallValidator(method);
  if (!validate(named)) {
    const problems = describeSchemaErrors(validate.errors ?? [], named).map((problem) => problem.message);
    throw new BerthError('ERR_BAD_REQUEST', `bad request: ${method}: ${problems.join('; ')}`);
  }
  return { method, params: names.map((name) => named[name]) } as AgentCall;
}

/**
 * Hands a checked call to the agent; resolves with what the call returns (undefined for none).
 * A `logs` call resolves with its stream: an AsyncIterable of ReplicaLogLine (see isLogStream).
 */
export function invokeAgentCall(agent: NodeAgent, call: AgentCall): Promise<unknown> {
  switch (call.method) {
    case 'logs':
      return Promise.resolve(agent.logs(...call.params));
    case 'snapshot':
      return agent.snapshot();
    case 'ensureReplica':
      return agent.ensureReplica(...call.params);
    case 'prepareReplica':
      return agent.prepareReplica(...call.params);
    case 'awaitReplica':
      return agent.awaitReplica(...call.params);
    case 'watchReplica':
      return agent.watchReplica(...call.params);
    case 'removeReplica':
      return agent.removeReplica(...call.params);
    case 'setMeshRoutes':
      return agent.setMeshRoutes(...call.params);
    case 'listVolumes':
      return agent.listVolumes();
    case 'removeVolume':
      return agent.removeVolume(...call.params);
    case 'awaitChange':
      return agent.awaitChange(...call.params);
  }
}

/** Whether a call's result is a stream (a `logs` call's) rather than one value. */
export function isLogStream(call: AgentCall, _result: unknown): _result is AsyncIterable<ReplicaLogLine> {
  return call.method === 'logs';
}

/**
 * A client's awaitReplica or watchReplica of any length, as calls of at most MAX_CALL_WAIT_MS:
 * `await` goes on after a `timeout`, `watch` goes on after a window survived (`healthy`).
 */
export async function waitInCalls(
  kind: 'await' | 'watch',
  totalMs: number,
  call: (waitMs: number) => Promise<ReplicaWaitResult>,
  now: () => number = Date.now,
): Promise<ReplicaWaitResult> {
  const deadline = now() + totalMs;
  let remainingMs = totalMs;
  for (;;) {
    const waitMs = Math.max(1, Math.min(MAX_CALL_WAIT_MS, Math.ceil(remainingMs)));
    const result = await call(waitMs);
    const goOn = kind === 'await' ? result.outcome === 'timeout' : result.outcome === 'healthy';
    // A call given all of the wait that was left answers for the whole of it.
    if (!goOn || waitMs >= remainingMs) return result;
    remainingMs = deadline - now();
    if (remainingMs <= 0) return result;
  }
}

/** A mesh drain as long as one call may wait: longer drains end when this one does. */
export function drainWithinCall(drainTimeoutMs: number): number {
  return Math.max(0, Math.min(MAX_CALL_WAIT_MS, Math.ceil(drainTimeoutMs)));
}
