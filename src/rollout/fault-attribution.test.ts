import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeAgent, NodeSnapshot, ObservedReplica, ReplicaWaitResult } from '../api/types.js';
import { BerthError, type ErrorCode } from '../core/errors.js';
import {
  faultSourceOf,
  infrastructureCause,
  InfrastructureFault,
  onNode,
  type FaultSource,
} from './fault-attribution.js';

describe('whose fault an error is', () => {
  const table: [what: string, error: unknown, source: FaultSource][] = [
    [
      'the image does not exist',
      new BerthError('ERR_IMAGE_NOT_FOUND', 'image x:1 is not present'),
      'revision',
    ],
    [
      'the engine refuses the request as invalid',
      new BerthError('ERR_BAD_REQUEST', 'invalid mount'),
      'revision',
    ],
    ['a secret cannot be decrypted', new BerthError('ERR_SECRET_UNREADABLE', 'no key'), 'revision'],
    ['the replica is unhealthy', new BerthError('ERR_ROLLOUT_UNHEALTHY', 'probe failed'), 'revision'],
    [
      'the progress deadline passed',
      new BerthError('ERR_ROLLOUT_DEADLINE', 'not healthy in time'),
      'revision',
    ],
    ['an unsupported feature', new BerthError('ERR_NOT_SUPPORTED', 'udp'), 'revision'],
    [
      'the node went away during a call',
      new BerthError('ERR_AGENT_UNREACHABLE', 'node bn3 went away during a call: its connection closed'),
      'infrastructure',
    ],
    [
      'the node is not connected',
      new BerthError('ERR_AGENT_UNREACHABLE', 'node bn3 is not connected'),
      'infrastructure',
    ],
    [
      'a call timed out',
      new BerthError('ERR_AGENT_UNREACHABLE', 'node bn3 did not answer awaitReplica within 30000 ms'),
      'infrastructure',
    ],
    [
      'the engine is down',
      new BerthError('ERR_DOCKER_UNAVAILABLE', 'connect ENOENT docker.sock'),
      'infrastructure',
    ],
    ['the engine fails with a server error', new BerthError('ERR_INTERNAL', 'HTTP 500'), 'infrastructure'],
    [
      'the agent credential is refused',
      new BerthError('ERR_AGENT_UNAUTHORIZED', 'bad token'),
      'infrastructure',
    ],
    [
      'a container vanished',
      new BerthError('ERR_CONTAINER_NOT_FOUND', 'vanished right after it was started'),
      'infrastructure',
    ],
    [
      'the agent is closing (operator stopping)',
      new BerthError('ERR_STATE', 'agent for node n1 is closed'),
      'infrastructure',
    ],
    ['a plain exception (a transport bug)', new TypeError('fetch failed'), 'infrastructure'],
  ];
  for (const [what, error, source] of table) {
    test(`${what} -> ${source}`, () => {
      assert.equal(faultSourceOf(error), source);
    });
  }

  test('onNode names the node of an infrastructure fault and passes the revision`s own errors through', async () => {
    const lost = onNode('bn3', () => Promise.reject(new BerthError('ERR_AGENT_UNREACHABLE', 'went away')));
    await assert.rejects(lost, (error: unknown) => {
      assert.ok(error instanceof InfrastructureFault);
      assert.deepEqual([error.node, error.code], ['bn3', 'ERR_AGENT_UNREACHABLE' satisfies ErrorCode]);
      return true;
    });
    const invalid = onNode('bn3', () => Promise.reject(new BerthError('ERR_IMAGE_NOT_FOUND', 'no image')));
    await assert.rejects(
      invalid,
      (error: unknown) => error instanceof BerthError && error.code === 'ERR_IMAGE_NOT_FOUND',
    );
  });
});

/** A node that answers a snapshot with `states` in turn (null: the replica is gone), or throws. */
function nodeAnswering(states: (ObservedReplica['state'] | null | Error)[]): NodeAgent {
  let call = 0;
  const snapshot = (): Promise<NodeSnapshot> => {
    const state = states[Math.min(call++, states.length - 1)];
    if (state instanceof Error) return Promise.reject(state);
    const replicas =
      state === null || state === undefined ? [] : [{ name: 'web-1', state } as ObservedReplica];
    return Promise.resolve({ name: 'n1', replicas } as unknown as NodeSnapshot);
  };
  return { name: 'n1', snapshot } as unknown as NodeAgent;
}

describe('a replica that failed: its revision or its node', () => {
  const exited: ReplicaWaitResult = { outcome: 'exited', replica: null, reason: 'exited with 1' };
  const cases: [
    what: string,
    states: (ObservedReplica['state'] | null | Error)[],
    blamed: 'revision' | 'n1',
  ][] = [
    ['running and unhealthy on a node that answers', ['running'], 'revision'],
    ['exited, and still exited once the node settled', ['exited', 'exited', 'exited'], 'revision'],
    ['on a node that no longer answers', [new BerthError('ERR_DOCKER_UNAVAILABLE', 'engine down')], 'n1'],
    ['removed from its node', [null], 'n1'],
    ['exited as its engine stops: removed, then no answer', ['exited', null], 'n1'],
    [
      'exited as its engine stops: no answer',
      ['exited', new BerthError('ERR_AGENT_UNREACHABLE', 'gone')],
      'n1',
    ],
  ];
  for (const [what, states, blamed] of cases) {
    test(`${what} -> ${blamed}`, async () => {
      const fault = await infrastructureCause(nodeAnswering(states), 'web-1', exited, 600);
      assert.equal(fault?.node ?? 'revision', blamed);
    });
  }
});
