import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeSnapshot, ObservedReplica } from '../api/types.js';
import type { ServiceSpec } from '../manifests/types.js';
import {
  computeMeshRoutes,
  computeServiceRoutes,
  misaddressedReplicas,
  withoutReplicas,
} from './mesh-routes.js';

function replica(
  name: string,
  node: string,
  hostPort: number,
  over: Partial<ObservedReplica> = {},
): ObservedReplica {
  return {
    name,
    id: name,
    node,
    namespace: 'ns',
    service: 'web',
    slot: '1',
    specHash: 'h',
    revision: 'r',
    state: 'running',
    health: 'healthy',
    healthDetail: null,
    exitCode: null,
    restartCount: 0,
    createdAt: '',
    startedAt: null,
    ports: [{ target: 8080, protocol: 'tcp', hostIp: '0.0.0.0', hostPort }],
    specSummary: null,
    ...over,
  };
}

function node(
  name: string,
  address: string,
  replicas: ObservedReplica[],
  status: NodeSnapshot['status'] = 'ready',
): NodeSnapshot {
  return {
    name,
    address,
    labels: {},
    capacity: { nanoCpus: 1e9, memoryBytes: 1e9 },
    engineVersion: '',
    status,
    images: [],
    replicas,
  };
}

const web = {
  namespace: 'ns',
  name: 'web',
  ports: [
    { target: 8080, published: 80, protocol: 'tcp', appProtocol: 'tcp' },
    { target: 9090, published: null, protocol: 'tcp', appProtocol: 'http' },
  ],
} as unknown as ServiceSpec;

describe('computeMeshRoutes', () => {
  test('lists healthy replicas of every answering node at their node address, drained ones left out', () => {
    const observed = {
      nodes: [
        node('n1', '127.0.1.1', [
          replica('web.1', 'n1', 32001),
          replica('web.2', 'n1', 32002, { health: 'starting' }),
          replica('web.3', 'n1', 32003, { health: 'unhealthy' }),
          replica('web.4', 'n1', 32004, { health: 'none' }),
          replica('web.5', 'n1', 32005, { state: 'exited', health: 'none' }),
          replica('other.1', 'n1', 32006, { service: 'other' }),
        ]),
        node('n2', '127.0.1.2', [
          replica('web.6', 'n2', 32007, {
            ports: [{ target: 8080, protocol: 'tcp', hostIp: '127.0.1.2', hostPort: 32007 }],
          }),
          replica('web.7', 'n2', 32008),
        ]),
        node('n3', '', [replica('web.8', 'n3', 32009)], 'down'),
      ],
    };
    const routes = computeMeshRoutes({ services: [web] }, observed, new Set(['n2/web.7']));
    assert.deepEqual(routes, [
      {
        service: 'ns/web',
        published: 80,
        protocol: 'tcp',
        appProtocol: 'tcp',
        backends: [
          { id: 'n1/web.1', host: '127.0.1.1', port: 32001 },
          { id: 'n1/web.4', host: '127.0.1.1', port: 32004 },
          { id: 'n2/web.6', host: '127.0.1.2', port: 32007 },
        ],
      },
    ]);
  });

  test('a replacement on another node keeps serving while the replica of the same name it replaces is withdrawn', () => {
    // Drain and node loss: the new replica has the old one's name (slot and spec), on another node.
    const observed = {
      nodes: [
        node('n1', '127.0.1.1', [replica('web.1', 'n1', 32001)]),
        node('n2', '127.0.1.2', [replica('web.1', 'n2', 32002)]),
      ],
    };
    const routes = computeMeshRoutes({ services: [web] }, observed, new Set(['n1/web.1']));
    assert.deepEqual(routes[0]?.backends, [{ id: 'n2/web.1', host: '127.0.1.2', port: 32002 }]);
  });

  test("a replica published on an address that is not its node's is not routed to, on any port", () => {
    // n2 claims a replica on n1's address (and one on a host outside the cluster): neither is its own.
    const on = (hostIp: string, hostPort: number) => ({
      ports: [
        { target: 8080, protocol: 'tcp' as const, hostIp, hostPort },
        { target: 9090, protocol: 'tcp' as const, hostIp, hostPort: hostPort + 100 },
      ],
    });
    const observed = {
      nodes: [
        node('n1', '127.0.1.1', [replica('web.1', 'n1', 32001, on('127.0.1.1', 32001))]),
        node('n2', '127.0.1.2', [
          replica('web.2', 'n2', 32001, on('127.0.1.1', 32001)),
          replica('web.3', 'n2', 443, on('203.0.113.7', 443)),
          replica('web.4', 'n2', 32004, on('::', 32004)),
        ]),
      ],
    };
    const own = [
      { id: 'n1/web.1', host: '127.0.1.1', port: 32001 },
      { id: 'n2/web.4', host: '127.0.1.2', port: 32004 },
    ];
    assert.deepEqual(computeMeshRoutes({ services: [web] }, observed)[0]?.backends, own);
    assert.deepEqual(
      computeServiceRoutes({ services: [web] }, observed)[0]?.ports.map((p) => p.backends.map((b) => b.id)),
      [own.map((b) => b.id), own.map((b) => b.id)],
    );
    assert.deepEqual(misaddressedReplicas(observed), [
      { node: 'n2', replica: 'web.2', nodeAddress: '127.0.1.2', publishedOn: '127.0.1.1' },
      { node: 'n2', replica: 'web.3', nodeAddress: '127.0.1.2', publishedOn: '203.0.113.7' },
    ]);
  });

  test('a published port with no healthy replica still has a route (a connection is closed, never misrouted)', () => {
    const routes = computeMeshRoutes({ services: [web] }, { nodes: [node('n1', '127.0.0.1', [])] });
    assert.deepEqual(routes, [
      { service: 'ns/web', published: 80, protocol: 'tcp', appProtocol: 'tcp', backends: [] },
    ]);
  });
});

describe('replicas of a node that is down', () => {
  test('are backends only while the service has no replica on a node that answers', () => {
    const frozen = node('n3', '127.0.1.3', [replica('web.8', 'n3', 32009)], 'down');
    const alone = computeMeshRoutes({ services: [web] }, { nodes: [frozen, node('n1', '127.0.1.1', [])] });
    assert.deepEqual(alone[0]?.backends, [{ id: 'n3/web.8', host: '127.0.1.3', port: 32009 }]);
    const replaced = computeMeshRoutes(
      { services: [web] },
      { nodes: [frozen, node('n1', '127.0.1.1', [replica('web.8', 'n1', 32001)])] },
    );
    assert.deepEqual(replaced[0]?.backends, [{ id: 'n1/web.8', host: '127.0.1.1', port: 32001 }]);
    // A replacement still starting does not count yet: the down node's replica keeps serving.
    const starting = computeMeshRoutes(
      { services: [web] },
      { nodes: [frozen, node('n1', '127.0.1.1', [replica('web.8', 'n1', 32001, { health: 'starting' })])] },
    );
    assert.deepEqual(starting[0]?.backends, [{ id: 'n3/web.8', host: '127.0.1.3', port: 32009 }]);
  });
});

describe('computeServiceRoutes', () => {
  test('every TCP target port of a service, published or not, with the same healthy backends', () => {
    const observed = {
      nodes: [
        node('n1', '127.0.1.1', [
          replica('web.1', 'n1', 32001, {
            ports: [
              { target: 8080, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 32001 },
              { target: 9090, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 32101 },
            ],
          }),
          replica('web.2', 'n1', 32002, { health: 'unhealthy' }),
        ]),
        node('n2', '127.0.1.2', [replica('web.3', 'n2', 32003)], 'down'),
      ],
    };
    const udpOnly = {
      namespace: 'ns',
      name: 'dns',
      ports: [{ target: 53, published: null, protocol: 'udp' }],
    } as unknown as ServiceSpec;
    const api = {
      namespace: 'a',
      name: 'api',
      ports: [{ target: 80, published: null, protocol: 'tcp', appProtocol: 'tcp' }],
    };
    const services = computeServiceRoutes(
      { services: [web, udpOnly, api as unknown as ServiceSpec] },
      observed,
    );
    assert.deepEqual(services, [
      { namespace: 'a', name: 'api', ports: [{ target: 80, appProtocol: 'tcp', backends: [] }] },
      {
        namespace: 'ns',
        name: 'web',
        ports: [
          {
            target: 8080,
            appProtocol: 'tcp',
            backends: [{ id: 'n1/web.1', host: '127.0.1.1', port: 32001 }],
          },
          // Only web.1 publishes 9090; web.2 is unhealthy and n2 is down.
          {
            target: 9090,
            appProtocol: 'http',
            backends: [{ id: 'n1/web.1', host: '127.0.1.1', port: 32101 }],
          },
        ],
      },
    ]);
  });
});

describe('withoutReplicas', () => {
  test('takes the given replicas out of every published port and service port, nothing else', () => {
    const a = { id: 'n1/web.1', host: 'h', port: 1 };
    const b = { id: 'n2/web.1', host: 'h', port: 2 };
    const table = {
      version: 7,
      routes: [{ service: 'ns/web', published: 80, protocol: 'tcp' as const, backends: [a, b] }],
      services: [{ namespace: 'ns', name: 'web', ports: [{ target: 8080, backends: [a, b] }] }],
    };
    assert.deepEqual(withoutReplicas(table, new Set(['n1/web.1'])), {
      version: 7,
      routes: [{ service: 'ns/web', published: 80, protocol: 'tcp', backends: [b] }],
      services: [{ namespace: 'ns', name: 'web', ports: [{ target: 8080, backends: [b] }] }],
    });
    assert.equal(withoutReplicas(table, new Set()), table);
  });
});
