import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAgentCall, type AgentCall } from '../api/agent-calls.js';
import type { ReplicaRequest } from '../api/types.js';
import { AGENT_ROUTES, httpRequestFor } from './agent-routes.js';

const request = { name: 'node-1.web.1', image: 'web:1' } as ReplicaRequest;
const calls: AgentCall[] = [
  { method: 'snapshot', params: [] },
  { method: 'ensureReplica', params: [request] },
  { method: 'prepareReplica', params: [request] },
  { method: 'awaitReplica', params: ['node-1.web.1', { timeoutMs: 5 }] },
  { method: 'watchReplica', params: ['node-1.web.1', { durationMs: 5 }] },
  { method: 'removeReplica', params: ['node-1.web.1'] },
  { method: 'setMeshRoutes', params: [{ version: 1, routes: [] }, { drainTimeoutMs: 0 }] },
  { method: 'logs', params: ['node-1.web.1', { tail: 10, follow: true, sinceSeconds: 1.5 }] },
];

/** The route a request reaches, with the URL parameters it carries (a tiny router for the test). */
function route(method: string, path: string) {
  for (const candidate of AGENT_ROUTES) {
    if (candidate.method !== method) continue;
    const pattern = new RegExp(`^${candidate.url.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`);
    const match = pattern.exec(path);
    if (match) return { route: candidate, params: { ...match.groups } as Record<string, string> };
  }
  return null;
}

describe('agent calls as HTTP requests', () => {
  for (const call of calls) {
    test(`${call.method} goes out and comes back as the same call`, () => {
      const sent = httpRequestFor(call);
      const reached = route(sent.method, sent.path);
      assert.ok(reached, `${sent.method} ${sent.path} reaches a route`);
      assert.equal(reached.route.call, call.method);
      const params = reached.route.callParams({
        params: Object.fromEntries(
          Object.entries(reached.params).map(([k, v]) => [k, decodeURIComponent(v)]),
        ),
        body: sent.body === undefined ? undefined : JSON.parse(JSON.stringify(sent.body)),
      });
      assert.deepEqual(params, call.params);
    });
  }

  test('a body naming another replica than the URL is refused', () => {
    const reached = route('PUT', '/v1/replicas/node-1.other');
    assert.ok(reached?.route.check);
    const input = { params: reached.params, body: request };
    assert.throws(
      () => reached.route.check?.({ method: 'ensureReplica', params: [request] }, input),
      /differs from the URL/,
    );
    assert.equal(parseAgentCall('removeReplica', ['node-1.other']).method, 'removeReplica');
  });
});
