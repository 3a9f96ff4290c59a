import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from '../manifests/load.js';
import { checkRevision, revisionCheckError } from './preflight.js';
import { configuredBerthPorts } from './reserved-ports.js';

const loaded = (ports: string) =>
  loadManifests(
    [
      {
        path: 'web.yaml',
        content: new TextEncoder().encode(
          `apiVersion: berth/v1\nkind: Service\nmetadata: { name: web }\nspec:\n  image: busybox:1.36\n  ports: ${ports}\n`,
        ),
      },
    ],
    { revision: 'r' },
  );

describe('ports berth is configured to listen on', () => {
  const berthPorts = configuredBerthPorts({
    listen: { port: 8443 },
    clusterListen: { port: 7000 },
    agentUrls: ['http://10.0.0.5:7100', 'https://agent.example'],
  });

  test('come from --listen, --cluster-listen and the --agent URLs; port 0 reserves nothing', () => {
    assert.deepEqual(
      berthPorts.map((p) => p.port),
      [8443, 7000, 7100, 443],
    );
    assert.deepEqual(configuredBerthPorts({ listen: { port: 0 }, clusterListen: null, agentUrls: [] }), []);
  });

  test('a revision publishing one is refused at preflight, naming the service, field and listener', () => {
    const check = checkRevision(
      loaded('[{ target: 80, published: 8080 }, { target: 81, published: 8443 }]'),
      berthPorts,
    );
    assert.equal(check.ok, false);
    assert.ok(!check.ok);
    const error = revisionCheckError(check);
    assert.equal(error.code, 'ERR_NOT_SUPPORTED');
    assert.equal(
      error.message,
      "invalid manifests: service default/web: spec.ports[1].published: port 8443 is this operator's API port (berth run --listen); a Service cannot publish the ports berth listens on",
    );
  });

  test('without them (berth validate, other operators), the same revision is fine', () => {
    assert.ok(checkRevision(loaded('[{ target: 81, published: 8443 }]')).ok);
    assert.ok(
      checkRevision(loaded('[{ target: 7000 }]'), berthPorts).ok,
      'a target port is the container’s own',
    );
  });
});
