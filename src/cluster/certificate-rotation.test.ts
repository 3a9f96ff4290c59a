import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  allCertificatesOf,
  certificateStanding,
  currentRevocations,
  promoteRenewed,
  recordRenewal,
  type NodeCertificates,
} from './certificate-rotation.js';

const AT = '2026-01-01T00:00:00.000Z';
const plain: NodeCertificates = { name: 'n1', serial: 'a1', certificateNotAfter: 'T1' };
const renewing: NodeCertificates = { ...plain, renewed: { serial: 'b2', notAfter: 'T2' } };

describe('which node certificates may act', () => {
  const cases: {
    name: string;
    node: NodeCertificates | undefined;
    serial: string;
    revoked: boolean;
    want: 'current' | 'renewed' | RegExp;
  }[] = [
    { name: 'the current certificate', node: plain, serial: 'a1', revoked: false, want: 'current' },
    {
      name: 'the current one while a renewed one waits',
      node: renewing,
      serial: 'a1',
      revoked: false,
      want: 'current',
    },
    { name: 'the renewed one, not yet used', node: renewing, serial: 'b2', revoked: false, want: 'renewed' },
    { name: 'a revoked certificate', node: renewing, serial: 'a1', revoked: true, want: /is revoked/ },
    {
      name: 'a certificate the node does not hold',
      node: renewing,
      serial: 'c3',
      revoked: false,
      want: /not its current one/,
    },
    {
      name: 'a node that is not joined',
      node: undefined,
      serial: 'a1',
      revoked: false,
      want: /not a member/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const standing = certificateStanding(
        c.node,
        { name: 'n1', serial: c.serial },
        c.revoked ? { serial: c.serial, node: 'n1', at: AT } : undefined,
      );
      if (c.want instanceof RegExp) {
        assert.equal(standing.kind, 'refused');
        assert.match(standing.kind === 'refused' ? standing.reason : '', c.want);
      } else {
        assert.equal(standing.kind, c.want);
      }
    });
  }
});

describe('what a renewal and the first use of its certificate change', () => {
  const issued = { serial: 'c3', notAfter: 'T3' };
  const cases: {
    name: string;
    run: () => { node: NodeCertificates; revoked: { serial: string }[] };
    current: string;
    renewed: string | undefined;
    revoked: string[];
  }[] = [
    {
      name: 'renewing with the current certificate keeps it valid and records the new one',
      run: () => recordRenewal(plain, 'a1', issued, AT),
      current: 'a1',
      renewed: 'c3',
      revoked: [],
    },
    {
      name: 'renewing again with the current one supersedes the renewed one that was never used',
      run: () => recordRenewal(renewing, 'a1', issued, AT),
      current: 'a1',
      renewed: 'c3',
      revoked: ['b2'],
    },
    {
      name: 'renewing with the renewed certificate uses it: it becomes current, the old one is revoked',
      run: () => recordRenewal(renewing, 'b2', issued, AT),
      current: 'b2',
      renewed: 'c3',
      revoked: ['a1'],
    },
    {
      name: 'connecting with the renewed certificate makes it current and revokes the old one',
      run: () => promoteRenewed(renewing, AT),
      current: 'b2',
      renewed: undefined,
      revoked: ['a1'],
    },
    {
      name: 'a node with no renewed certificate is left as it is',
      run: () => promoteRenewed(plain, AT),
      current: 'a1',
      renewed: undefined,
      revoked: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { node, revoked } = c.run();
      assert.equal(node.serial, c.current);
      assert.equal(node.renewed?.serial, c.renewed);
      assert.deepEqual(
        revoked.map((r) => r.serial),
        c.revoked,
      );
    });
  }

  test('the renewed certificate carries its own expiry once current', () => {
    assert.equal(promoteRenewed(renewing, AT).node.certificateNotAfter, 'T2');
  });

  test('removing a node revokes every certificate it holds', () => {
    assert.deepEqual(
      allCertificatesOf(renewing, AT).map((r) => r.serial),
      ['a1', 'b2'],
    );
    assert.deepEqual(
      allCertificatesOf(plain, AT).map((r) => r.serial),
      ['a1'],
    );
  });
});

test('a revocation is kept while the revoked certificate could still be presented, and no longer', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const day = 86_400_000;
  const node = { name: 'n1', serial: 'a1', certificateNotAfter: '2026-06-10T00:00:00Z' };
  const [current] = allCertificatesOf(node, '2026-05-01T00:00:00Z');
  assert.equal(current?.notAfter, '2026-06-10T00:00:00Z');
  const kept = currentRevocations(
    [
      current,
      { serial: 'old', node: 'n1', at: '2026-01-01T00:00:00Z', notAfter: '2026-05-31T23:59:59Z' },
      // Written by an earlier version, without an expiry: kept one lifetime from its revocation.
      { serial: 'legacy-recent', node: 'n1', at: '2026-05-20T00:00:00Z' },
      { serial: 'legacy-old', node: 'n1', at: '2026-01-01T00:00:00Z' },
    ],
    now,
    90 * day,
  );
  assert.deepEqual(
    kept.map((r) => r.serial),
    ['a1', 'legacy-recent'],
  );
});
