import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from '../manifests/load.js';
import { findUnsupportedFeatures, unsupportedFeatures } from './capabilities.js';

function loaded(ports: string) {
  const yaml = `apiVersion: berth/v1
kind: Service
metadata: { name: dns }
spec:
  image: busybox:1.36
  ports: ${ports}
`;
  const result = loadManifests([{ path: 'dns.yaml', content: new TextEncoder().encode(yaml) }], {
    revision: 'r',
  });
  assert.ok(result.ok, JSON.stringify(result));
  return result.desired;
}

const problemsFor = (ports: string): string[] => unsupportedFeatures(loaded(ports));

describe('what the mesh cannot do, refused with the change to make', () => {
  test('TCP ports, plain or HTTP-aware, published or not, are fine', () => {
    assert.deepEqual(
      problemsFor('[{ target: 80, published: 8080, appProtocol: http }, { target: 53, protocol: udp }]'),
      [],
    );
  });

  test('a published UDP port and an HTTP-aware UDP port are refused', () => {
    assert.deepEqual(problemsFor('[{ target: 53, published: 53, protocol: udp }]'), [
      'service default/dns: spec.ports[0].published: 53/udp cannot be published: the routing mesh serves TCP only; remove `published` — each replica still publishes its target port on an ephemeral port of its node',
    ]);
    assert.deepEqual(problemsFor('[{ target: 53, protocol: udp, appProtocol: http }]'), [
      'service default/dns: spec.ports[0].appProtocol: http needs protocol tcp (HTTP/1.1 runs over TCP)',
    ]);
  });

  test('each refusal names its service and the field, so it can be located in the file', () => {
    assert.deepEqual(
      findUnsupportedFeatures(loaded('[{ target: 80 }, { target: 53, published: 53, protocol: udp }]')).map(
        (f) => [f.namespace, f.service, f.path],
      ),
      [['default', 'dns', ['spec', 'ports', 1, 'published']]],
    );
  });
});
