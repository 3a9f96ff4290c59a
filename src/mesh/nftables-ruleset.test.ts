import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nftTableName, nftTableOwner, renderNftRemoval, renderNftRuleset } from './nftables-ruleset.js';
import { countConntrack, openFlows, routeInterface } from './nftables.js';

test('a port is a random DNAT over its backends, in a table replaced as a whole', () => {
  const script = renderNftRuleset('berth_192_0_2_10_p42', '192.0.2.10', [
    { port: 8443, backends: [{ host: '192.0.2.11', port: 32001 }] },
    {
      port: 8080,
      backends: [
        { host: '192.0.2.10', port: 32000 },
        { host: '192.0.2.12', port: 32768 },
      ],
    },
  ]);
  const lines = script.split('\n');
  assert.deepEqual(lines.slice(0, 3), [
    'table ip berth_192_0_2_10_p42',
    'delete table ip berth_192_0_2_10_p42',
    'table ip berth_192_0_2_10_p42 {',
  ]);
  assert.ok(
    script.includes(
      'ip daddr 192.0.2.10 tcp dport 8080 dnat ip to numgen random mod 2 map { 0 : 192.0.2.10 . 32000, 1 : 192.0.2.12 . 32768 }',
    ),
  );
  assert.ok(script.includes('dnat ip to numgen random mod 1 map { 0 : 192.0.2.11 . 32001 }'));
  // Ports in order; both hooks a client can come through; masquerade only for marked (forwarded) ones.
  assert.ok(script.indexOf('dport 8080 dnat') < script.indexOf('dport 8443 dnat'));
  assert.ok(
    script.includes('ip daddr 192.0.2.10 tcp dport { 8080, 8443 } meta mark set meta mark | 0x00200000'),
  );
  assert.ok(script.includes('type nat hook output priority -100'));
  assert.ok(script.includes('meta mark & 0x00200000 == 0x00200000 oifname != "lo" masquerade'));
});

test('a port without backends is left out (user space answers it), and nothing but IPv4 and ports gets in', () => {
  const t = 'berth_127_0_0_1_p7';
  const script = renderNftRuleset(t, '127.0.0.1', [{ port: 9000, backends: [] }]);
  assert.ok(!script.includes('dnat'));
  assert.ok(!script.includes('meta mark set'));
  assert.throws(() => renderNftRuleset(t, '127.0.0.1; flush ruleset', []), /IPv4/);
  assert.throws(
    () => renderNftRuleset(t, '127.0.0.1', [{ port: 80, backends: [{ host: 'evil }', port: 1 }] }]),
    /IPv4/,
  );
  assert.throws(() =>
    renderNftRuleset(t, '127.0.0.1', [{ port: 70000, backends: [{ host: '1.2.3.4', port: 1 }] }]),
  );
  assert.throws(() => renderNftRuleset('filter', '127.0.0.1', []), /berth's/);
  assert.equal(nftTableName('10.1.2.3', 99), 'berth_10_1_2_3_p99');
  assert.equal(nftTableOwner('berth_10_1_2_3_p99'), 99);
  assert.equal(nftTableOwner('nat'), null);
  assert.equal(
    renderNftRemoval('berth_10_1_2_3_p99'),
    'table ip berth_10_1_2_3_p99\ndelete table ip berth_10_1_2_3_p99\n',
  );
});

test('conntrack entries count for a backend while their connection is open', () => {
  const table = [
    'ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.9.1 sport=55024 dport=30999 src=127.0.9.2 dst=127.0.0.1 sport=32001 dport=55024 [ASSURED] mark=0 zone=0 use=2',
    'ipv4     2 tcp      6 100 TIME_WAIT src=127.0.0.1 dst=127.0.9.1 sport=55025 dport=30999 src=127.0.9.2 dst=127.0.0.1 sport=32001 dport=55025 [ASSURED] mark=0 zone=0 use=2',
    'ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.9.1 sport=55026 dport=30999 src=127.0.9.1 dst=127.0.0.1 sport=32000 dport=55026 [ASSURED] mark=0 zone=0 use=2',
    'ipv4     2 udp      17 20 src=127.0.0.1 dst=127.0.9.1 sport=1 dport=30999 src=127.0.9.2 dst=127.0.0.1 sport=32001 dport=1 mark=0 zone=0 use=2',
  ].join('\n');
  assert.equal(countConntrack(table, '127.0.9.1', 30999, { host: '127.0.9.2', port: 32001 }), 1);
  assert.equal(countConntrack(table, '127.0.9.1', 30999, { host: '127.0.9.1', port: 32000 }), 1);
  assert.equal(countConntrack(table, '127.0.9.1', 31000, { host: '127.0.9.2', port: 32001 }), 0);
  assert.equal(countConntrack('', '127.0.9.1', 30999, { host: '127.0.9.2', port: 32001 }), 0);
  // With nf_conntrack_acct on, counters follow each tuple; a reply not seen yet is flagged.
  const counted = [
    'ipv4     2 tcp      6 119 SYN_SENT src=127.0.0.1 dst=127.0.9.1 sport=55030 dport=30999 packets=1 bytes=60 [UNREPLIED] src=10.1.0.2 dst=10.1.0.1 sport=8080 dport=55030 packets=0 bytes=0 mark=0 zone=0 use=2',
    'ipv4     2 tcp      6 20 CLOSE src=127.0.0.1 dst=127.0.9.1 sport=55031 dport=30999 packets=5 bytes=300 src=10.1.0.2 dst=10.1.0.1 sport=8080 dport=55031 packets=4 bytes=400 mark=0 zone=0 use=2',
  ].join('\n');
  assert.deepEqual([...openFlows(counted)], [['127.0.9.1:30999>10.1.0.2:8080', 1]]);
});

test("a replica of this node is DNATed to its container's bridge address, loopback clients masqueraded", () => {
  const script = renderNftRuleset('berth_127_0_0_1_p7', '127.0.0.1', [
    {
      port: 8080,
      backends: [
        { host: '127.0.0.1', port: 32000, local: { host: '172.17.0.5', port: 80 } },
        { host: '127.0.0.2', port: 32001 },
      ],
    },
  ]);
  assert.ok(script.includes('map { 0 : 172.17.0.5 . 80, 1 : 127.0.0.2 . 32001 }'), script);
  assert.ok(
    script.includes(
      'ip saddr 127.0.0.0/8 ip daddr 127.0.0.1 tcp dport { 8080 } meta mark set meta mark | 0x00200000',
    ),
  );
  // What route_localnet would open to a bridge's neighbours stays shut: only answers get in.
  assert.ok(
    script.includes('iifname != "lo" ip daddr 127.0.0.0/8 ct state != { established, related } drop'),
  );
  assert.throws(
    () =>
      renderNftRuleset('berth_127_0_0_1_p7', '127.0.0.1', [
        { port: 80, backends: [{ host: '127.0.0.1', port: 1, local: { host: '172.17.0.5 }', port: 80 } }] },
      ]),
    /IPv4/,
  );
});

test('the interface a container address is routed through, by longest prefix of /proc/net/route', () => {
  const routes = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
    'br-1\t000511AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    '../x\t0002750A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');
  assert.equal(routeInterface(routes, '172.17.0.16'), 'docker0');
  assert.equal(routeInterface(routes, '172.17.5.3'), 'br-1');
  assert.equal(routeInterface(routes, '10.117.2.9'), 'eth0', 'an unsafe interface name is never used');
  assert.equal(routeInterface(routes.split('\n').slice(0, 1).join('\n'), '172.17.0.2'), null);
});
