import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CLUSTER_ZONE,
  containerResolverSettings,
  isInClusterZone,
  lookupZoneName,
  serviceDomainName,
} from './cluster-zone.js';

const services = new Set(['shop/web', 'backend/api', 'com/github', 'shop/db']);

describe('cluster zone', () => {
  test('a container searches its namespace first, then the zone, with ndots 3', () => {
    assert.equal(CLUSTER_ZONE, 'berth.internal');
    assert.deepEqual(containerResolverSettings('shop'), {
      search: ['shop.svc.berth.internal', 'berth.internal'],
      options: ['ndots:3'],
    });
    assert.equal(serviceDomainName('shop', 'web'), 'web.shop.svc.berth.internal');
  });

  test('only the zone and names under it are in the zone', () => {
    for (const name of ['berth.internal', 'svc.berth.internal', 'web.shop.svc.berth.internal']) {
      assert.ok(isInClusterZone(name), name);
    }
    for (const name of ['internal', 'evilberth.internal', 'berth.internal.com', 'github.com', 'web.shop']) {
      assert.ok(!isInClusterZone(name), name);
    }
  });

  // What each name a container may ask (typed, or made by its search domains) is in the zone.
  const cases: [string, ReturnType<typeof lookupZoneName>][] = [
    // Full names, for every namespace, TLD-named ones too.
    ['web.shop.svc.berth.internal', { service: 'shop/web' }],
    ['github.com.svc.berth.internal', { service: 'com/github' }],
    ['nope.shop.svc.berth.internal', 'no-such-name'],
    // `api.backend` from a container of shop, through its first search domain (`web` from it is
    // the full name above).
    ['api.backend.shop.svc.berth.internal', { service: 'backend/api' }],
    ['api.nowhere.shop.svc.berth.internal', 'no-such-name'],
    // `web.shop` from a container of backend: shop is a namespace named like a public TLD, so the
    // short form is not served (web.shop could be an outside name); web.shop.svc still is.
    ['web.shop.backend.svc.berth.internal', 'no-such-name'],
    ['web.shop.svc.backend.svc.berth.internal', 'no-such-name'],
    // `github.com` from a container of shop, through each search domain: never the service.
    ['github.com.shop.svc.berth.internal', 'no-such-name'],
    ['github.com.berth.internal', 'no-such-name'],
    ['www.github.com.shop.svc.berth.internal', 'no-such-name'],
    // Names without records, and nothing else.
    ['berth.internal', 'no-records'],
    ['svc.berth.internal', 'no-records'],
    ['shop.svc.berth.internal', 'no-records'],
    ['empty.svc.berth.internal', 'no-such-name'],
    ['web.berth.internal', 'no-such-name'],
    ['web.shop.berth.internal', 'no-such-name'],
  ];
  for (const [name, expected] of cases) {
    test(`${name}: ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(lookupZoneName(name, services), expected);
    });
  }
});
