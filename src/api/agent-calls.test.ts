import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ValidateFunction } from 'ajv';
import { broken, importBuiltModule } from '../../test/helpers/prebuilt-validators.js';
import { BerthError } from '../core/errors.js';
import { exportName } from '../core/prebuilt-validators.js';
import {
  AGENT_CALL_NAMES,
  AGENT_CALLS,
  agentCallTimeoutMs,
  agentCallValidator,
  agentCallValidatorsModule,
  type AgentCallName,
  drainWithinCall,
  MAX_CALL_WAIT_MS,
  parseAgentCall,
  waitInCalls,
} from './agent-calls.js';
import type { ReplicaRequest, ReplicaWaitResult } from './types.js';

const request: ReplicaRequest = {
  name: 'node-1.web.1',
  namespace: 'default',
  service: 'web',
  slot: '1',
  specHash: 'abc',
  revision: 'r1',
  image: 'web:1',
  command: null,
  args: null,
  env: { A: 'b' },
  ports: [{ target: 8080, protocol: 'tcp' }],
  files: [],
  healthcheck: null,
  limits: { nanoCpus: 0, memoryBytes: 0 },
  restart: { condition: 'any', maxAttempts: 0 },
  stopGracePeriodMs: 1000,
  user: null,
  workingDir: null,
  init: true,
  specSummary: {},
};

const volume = {
  source: 'berth.default.web.data.1',
  volume: 'data',
  target: '/data',
  readOnly: false,
  driver: 'local',
  driverOptions: {},
};

const refusal = (method: unknown, params: unknown): string => {
  try {
    parseAgentCall(method, params);
  } catch (error) {
    assert.ok(error instanceof BerthError);
    assert.equal(error.code, 'ERR_BAD_REQUEST');
    return error.message;
  }
  assert.fail(`${String(method)} ${JSON.stringify(params)} was accepted`);
};

describe('the agent call contract', () => {
  test('well-formed calls pass, with their parameters as sent', () => {
    assert.deepEqual(parseAgentCall('snapshot', []), { method: 'snapshot', params: [] });
    assert.deepEqual(parseAgentCall('ensureReplica', [request]), {
      method: 'ensureReplica',
      params: [request],
    });
    assert.deepEqual(parseAgentCall('awaitReplica', ['x', { timeoutMs: 5 }]).params, ['x', { timeoutMs: 5 }]);
    assert.deepEqual(
      parseAgentCall('setMeshRoutes', [{ version: 1, routes: [] }, { drainTimeoutMs: 0 }]).params,
      [{ version: 1, routes: [] }, { drainTimeoutMs: 0 }],
    );
  });

  test('container security travels as sent; a request without it (an older operator) passes too', () => {
    const hardened = {
      ...request,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL' as const], add: ['NET_BIND_SERVICE' as const] },
    };
    assert.deepEqual(parseAgentCall('ensureReplica', [hardened]).params, [hardened]);
    assert.deepEqual(parseAgentCall('ensureReplica', [request]).params, [request]);
  });

  test('fields a newer operator adds are dropped, not refused', () => {
    const call = parseAgentCall('ensureReplica', [{ ...request, newerField: true }]);
    assert.deepEqual(call.params, [request]);
  });

  test('volumes and tmpfs travel as sent', () => {
    const withVolumes = { ...request, volumes: [volume], tmpfs: [{ target: '/tmp', sizeBytes: 1024 }] };
    const call = parseAgentCall('ensureReplica', [structuredClone(withVolumes)]);
    assert.deepEqual(call.params, [withVolumes]);
  });

  // Each row: a malformed call and the part of the refusal that names what is wrong.
  const malformed: [string, unknown, unknown, RegExp][] = [
    ['an unknown call', 'restartReplica', [], /unknown agent call "restartReplica"/],
    ['no method', undefined, [], /unknown agent call/],
    [
      'parameters that are not a list',
      'removeReplica',
      { name: 'x' },
      /parameters of removeReplica must be a list/,
    ],
    ['one parameter too many', 'removeReplica', ['x', 'y'], /removeReplica takes 1 parameter/],
    [
      'a missing image',
      'ensureReplica',
      [{ ...request, image: undefined }],
      /request: missing required field "image"/,
    ],
    ['a wrong type', 'ensureReplica', [{ ...request, image: 42 }], /request\.image: must be string, got 42/],
    [
      'a bad port',
      'ensureReplica',
      [{ ...request, ports: [{ target: 0, protocol: 'tcp' }] }],
      /request\.ports\[0\]\.target/,
    ],
    ['no request at all', 'ensureReplica', [], /missing required field "request"/],
    [
      'a capability that reaches the host',
      'ensureReplica',
      [{ ...request, capabilities: { drop: [], add: ['SYS_ADMIN'] } }],
      /request\.capabilities\.add\[0\]: must be one of "AUDIT_WRITE", .*got "SYS_ADMIN"/,
    ],
    [
      'a volume that is not berth’s',
      'ensureReplica',
      [{ ...request, volumes: [{ ...volume, source: 'postgres-data' }] }],
      /request\.volumes\[0\]\.source: must match/,
    ],
    [
      'a volume target that climbs',
      'ensureReplica',
      [{ ...request, volumes: [{ ...volume, target: '/data/../../etc' }] }],
      /request\.volumes\[0\]\.target/,
    ],
    [
      'a tmpfs on the root',
      'ensureReplica',
      [{ ...request, tmpfs: [{ target: '/', sizeBytes: 0 }] }],
      /request\.tmpfs\[0\]\.target: must match/,
    ],
    ['a bad replica name', 'removeReplica', ['../etc'], /name: must match/],
    [
      'a timeout that is not a number',
      'awaitReplica',
      ['x', { timeoutMs: 'soon' }],
      /options\.timeoutMs: must be integer/,
    ],
    [
      'a wait beyond one call',
      'watchReplica',
      ['x', { durationMs: MAX_CALL_WAIT_MS + 1 }],
      /options\.durationMs: must be <=/,
    ],
    [
      'a negative drain',
      'setMeshRoutes',
      [{ version: 1, routes: [] }, { drainTimeoutMs: -1 }],
      /options\.drainTimeoutMs/,
    ],
    [
      'a table without routes',
      'setMeshRoutes',
      [{ version: 1 }, { drainTimeoutMs: 0 }],
      /table: missing required field "routes"/,
    ],
  ];
  for (const [what, method, params, expected] of malformed) {
    test(`refuses ${what} with ERR_BAD_REQUEST naming the field`, () => {
      assert.match(refusal(method, params), expected);
    });
  }

  test('timeouts: fixed for snapshot and slow calls, the wait plus head-room for waits', () => {
    assert.equal(agentCallTimeoutMs('snapshot', []), 30_000);
    assert.equal(agentCallTimeoutMs('ensureReplica', [request]), 15 * 60_000);
    assert.equal(agentCallTimeoutMs('removeReplica', ['x']), 15 * 60_000);
    assert.equal(agentCallTimeoutMs('awaitReplica', ['x', { timeoutMs: 1000 }]), 31_000);
    assert.equal(agentCallTimeoutMs('watchReplica', ['x', { durationMs: 2000 }]), 32_000);
    assert.equal(
      agentCallTimeoutMs('setMeshRoutes', [{ version: 1, routes: [] }, { drainTimeoutMs: 0 }]),
      30_000,
    );
    assert.equal(drainWithinCall(10 * MAX_CALL_WAIT_MS), MAX_CALL_WAIT_MS);
    assert.equal(drainWithinCall(1500), 1500);
  });

  test('a long wait is split into calls of at most MAX_CALL_WAIT_MS', async () => {
    // Time as data: each call takes exactly the wait it was given.
    const run = async (
      kind: 'await' | 'watch',
      totalMs: number,
      outcomes: ReplicaWaitResult['outcome'][],
    ) => {
      let clock = 0;
      const waits: number[] = [];
      const result = await waitInCalls(
        kind,
        totalMs,
        async (waitMs) => {
          waits.push(waitMs);
          clock += waitMs;
          return { outcome: outcomes[waits.length - 1] ?? 'timeout', replica: null, reason: null };
        },
        () => clock,
      );
      return { waits, outcome: result.outcome };
    };
    const long = 2 * MAX_CALL_WAIT_MS + 1000;
    assert.deepEqual(await run('await', long, []), {
      waits: [MAX_CALL_WAIT_MS, MAX_CALL_WAIT_MS, 1000],
      outcome: 'timeout',
    });
    assert.deepEqual(await run('await', long, ['timeout', 'healthy']), {
      waits: [MAX_CALL_WAIT_MS, MAX_CALL_WAIT_MS],
      outcome: 'healthy',
    });
    assert.deepEqual(await run('watch', long, ['healthy', 'healthy', 'healthy']), {
      waits: [MAX_CALL_WAIT_MS, MAX_CALL_WAIT_MS, 1000],
      outcome: 'healthy',
    });
    assert.deepEqual(await run('watch', long, ['exited']), { waits: [MAX_CALL_WAIT_MS], outcome: 'exited' });
    // A wait within one call is asked for as given, once, however fast the answer comes.
    const waits: number[] = [];
    await waitInCalls(
      'await',
      5,
      async (waitMs) => {
        waits.push(waitMs);
        return { outcome: 'timeout', replica: null, reason: null };
      },
      () => 0,
    );
    assert.deepEqual(waits, [5]);
  });
});

describe('the call validators built ahead (npm run build) judge as the ones compiled at run time', () => {
  const table = {
    version: 3,
    routes: [
      {
        service: 'default/web',
        published: 8080,
        protocol: 'tcp',
        appProtocol: 'http',
        backends: [{ id: 'node-1/node-1.web.1', host: '10.0.0.2', port: 32768 }],
      },
    ],
  };
  /** Every call once, well formed (as the operator sends them). */
  const calls: Record<AgentCallName, unknown[]> = {
    snapshot: [],
    ensureReplica: [{ ...request, volumes: [volume], tmpfs: [{ target: '/tmp', sizeBytes: 1024 }] }],
    prepareReplica: [request],
    awaitReplica: ['node-1.web.1', { timeoutMs: 5 }],
    watchReplica: ['node-1.web.1', { durationMs: 5 }],
    removeReplica: ['node-1.web.1'],
    setMeshRoutes: [table, { drainTimeoutMs: 0 }],
    logs: ['node-1.web.1', { sinceSeconds: 60, tail: 10, follow: true }],
    listVolumes: [],
    removeVolume: ['berth.default.web.data.1'],
    awaitChange: [null, { timeoutMs: 1000 }],
  };

  test('every call, and every call broken in each place: same verdicts, errors and dropped fields', async () => {
    const built = await importBuiltModule(agentCallValidatorsModule());
    let refused = 0;
    for (const name of AGENT_CALL_NAMES) {
      const compiled = agentCallValidator(name);
      const prebuilt = built[exportName(name)] as ValidateFunction;
      const params = AGENT_CALLS[name].params.map(([param]) => param);
      const asObject = Object.fromEntries(params.map((param, i) => [param, calls[name][i]]));
      assert.equal(compiled(structuredClone(asObject)), true, `${name} as the operator sends it`);
      for (const value of [asObject, ...broken(asObject)]) {
        const [mine, theirs] = [structuredClone(value), structuredClone(value)];
        const verdict = compiled(mine);
        assert.equal(prebuilt(theirs), verdict, `${name}: ${JSON.stringify(value)}`);
        assert.deepEqual(prebuilt.errors, compiled.errors, `${name}: ${JSON.stringify(value)}`);
        // Unlisted fields are dropped in place, by both alike.
        assert.deepEqual(theirs, mine);
        if (!verdict) refused++;
      }
    }
    assert.ok(refused > 500, `only ${refused} refused`);
  });
});
