import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADDABLE_CAPABILITIES, ALL_CAPABILITIES, LINUX_CAPABILITIES } from './linux-capabilities.js';
import { loadManifests } from './load.js';
import { readSchema } from './schema.js';
import type { LoadResult, ManifestProblem, ServiceSpec } from './types.js';

/** One Service whose spec is `image` plus the given YAML lines (indented under spec). */
function load(...specLines: string[]): LoadResult {
  const yaml = [
    'apiVersion: berth/v1',
    'kind: Service',
    'metadata: { name: web }',
    'spec:',
    '  image: busybox:1.36',
    ...specLines.map((line) => `  ${line}`),
    '',
  ].join('\n');
  return loadManifests([{ path: 'web.yaml', content: new TextEncoder().encode(yaml) }], { revision: 'r' });
}

function problemsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, 'expected problems');
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

function serviceOf(result: LoadResult): ServiceSpec {
  assert.ok(result.ok, JSON.stringify(result));
  const [service] = result.desired.services;
  assert.ok(service);
  return service;
}

void describe('container security in manifests', () => {
  void test('privileged mode, host namespaces, devices and host mounts cannot be written', () => {
    const refused = [
      ['privileged: true', 'privileged'],
      ['network_mode: host', 'network_mode'],
      ['networkMode: host', 'networkMode'],
      ['pid: host', 'pid'],
      ['ipc: host', 'ipc'],
      ['devices: [/dev/sda]', 'devices'],
      ['mounts: ["/:/host"]', 'mounts'],
      ['cap_add: [SYS_ADMIN]', 'cap_add'],
      ['security_opt: ["seccomp=unconfined"]', 'security_opt'],
    ] as const;
    for (const [line, field] of refused) {
      const [problem] = problemsOf(load(line));
      assert.match(problem ?? '', new RegExp(`^web\\.yaml:6:3: spec: unknown field "${field}"`), line);
    }
  });

  void test('a Service without the new fields gets Docker defaults plus nothing', () => {
    const service = serviceOf(load());
    assert.equal(service.user, null);
    assert.equal(service.readOnlyRootFilesystem, false);
    assert.deepEqual(service.capabilities, { drop: [], add: [] });
  });

  void test('user, readOnlyRootFilesystem and capabilities are read as written', () => {
    const service = serviceOf(
      load(
        'user: "1000:1000"',
        'readOnlyRootFilesystem: true',
        'capabilities: { drop: [ALL], add: [NET_BIND_SERVICE, CHOWN] }',
      ),
    );
    assert.equal(service.user, '1000:1000');
    assert.equal(service.readOnlyRootFilesystem, true);
    assert.deepEqual(service.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE', 'CHOWN'] });
    for (const user of ['nobody', '0', 'app:app', 'www-data:33', '_svc']) {
      assert.equal(serviceOf(load(`user: "${user}"`)).user, user);
    }
  });

  void test('a user that is neither a name nor a number is refused at its line', () => {
    for (const user of ['', '1000:', ':1000', 'a b', '-rf', '1000:1000:1000', 'root;id']) {
      assert.deepEqual(problemsOf(load(`user: "${user}"`)), [
        `web.yaml:6:9: spec.user: must be a user name or numeric uid, optionally followed by ":" and a group name or gid, such as "1000:1000" or "nobody", got ${JSON.stringify(user)}`,
      ]);
    }
  });

  void test('capabilities that reach the host cannot be added; any can be dropped', () => {
    const [problem, ...rest] = problemsOf(load('capabilities:', '  add: [CHOWN, SYS_ADMIN]'));
    assert.deepEqual(rest, []);
    assert.match(
      problem ?? '',
      /^web\.yaml:7:18: spec\.capabilities\.add\[1\]: cannot be added: berth adds only AUDIT_WRITE, CHOWN, .*SYS_ADMIN, NET_ADMIN or SYS_PTRACE would reach the host, got "SYS_ADMIN"$/,
    );
    for (const name of ['NET_ADMIN', 'SYS_PTRACE', 'SYS_MODULE', 'NET_RAW', 'ALL', 'DAC_READ_SEARCH']) {
      assert.equal(problemsOf(load(`capabilities: { add: [${name}] }`)).length, 1, name);
    }
    const dropped = serviceOf(load('capabilities: { drop: [SYS_ADMIN, NET_RAW, MKNOD] }'));
    assert.deepEqual(dropped.capabilities.drop, ['SYS_ADMIN', 'NET_RAW', 'MKNOD']);
  });

  void test('capability names are Linux names without CAP_, listed once, in one list only', () => {
    assert.deepEqual(problemsOf(load('capabilities: { drop: [CAP_NET_RAW, net_raw] }')), [
      'web.yaml:6:26: spec.capabilities.drop[0]: must be "ALL" or a Linux capability name without the CAP_ prefix, such as "NET_RAW", got "CAP_NET_RAW"',
      'web.yaml:6:39: spec.capabilities.drop[1]: must be "ALL" or a Linux capability name without the CAP_ prefix, such as "NET_RAW", got "net_raw"',
    ]);
    assert.deepEqual(problemsOf(load('capabilities: { drop: [KILL, KILL] }')), [
      'web.yaml:6:25: spec.capabilities.drop: must not repeat a value (items 0 and 1 are equal)',
    ]);
    assert.deepEqual(problemsOf(load('capabilities: { drop: [KILL], add: [KILL] }')), [
      'web.yaml:6:39: spec.capabilities.add[0]: KILL is also in capabilities.drop; list it in one of them (drop: [ALL] with add: [KILL] keeps only what add names)',
    ]);
    assert.deepEqual(problemsOf(load('capabilities: { privileged: true }')), [
      'web.yaml:6:19: spec.capabilities: unknown field "privileged"',
    ]);
  });

  void test("berth's own default ports cannot be published", () => {
    assert.deepEqual(
      problemsOf(
        load('ports:', '  - { target: 80, published: 7946 }', '  - { target: 81, published: 7947 }'),
      ),
      [
        "web.yaml:7:32: spec.ports[0].published: port 7946 is berth's default cluster port (berth run --cluster-listen); a Service cannot publish the ports berth listens on",
        "web.yaml:8:32: spec.ports[1].published: port 7947 is the berth agent's default API port (berth agent --listen); a Service cannot publish the ports berth listens on",
      ],
    );
    assert.ok(load('ports: [{ target: 7946, published: 7948 }]').ok, 'a target port is the container’s own');
  });

  void test('the schema lists exactly the capabilities the code knows', () => {
    type Node = { properties: Record<string, Node>; items: { enum: string[] } };
    const schema = readSchema('service.schema.json') as unknown as Node;
    const lists = schema.properties['spec']?.properties['capabilities']?.properties;
    assert.deepEqual(lists?.['drop']?.items.enum, [ALL_CAPABILITIES, ...LINUX_CAPABILITIES]);
    assert.deepEqual(lists?.['add']?.items.enum, [...ADDABLE_CAPABILITIES]);
  });
});
