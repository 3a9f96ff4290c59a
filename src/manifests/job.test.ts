import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifests } from './load.js';
import type { LoadResult, ManifestProblem } from './types.js';

const file = (path: string, text: string) => ({ path, content: new TextEncoder().encode(text) });

function problemsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, 'expected problems');
  return (result as { problems: ManifestProblem[] }).problems.map(
    (p) => `${p.file}:${p.line}:${p.col}: ${p.message}`,
  );
}

const migrate = `apiVersion: berth/v1
kind: Job
metadata: { name: migrate }
spec:
  image: busybox:1.36
  command: [sh, -c, 'exit 0']
  env: { STEP: 1 }
`;

void describe('kind: Job', () => {
  void test('loads with every default applied', () => {
    const result = loadManifests([file('jobs.yaml', migrate)], { revision: 'r1' });
    assert.ok(result.ok, JSON.stringify(result));
    const [job] = result.desired.jobs ?? [];
    assert.ok(job);
    assert.equal(job.name, 'migrate');
    assert.equal(job.namespace, 'default');
    assert.equal(job.completions, 1);
    assert.equal(job.parallelism, 1);
    assert.equal(job.backoffLimit, 6);
    assert.equal(job.activeDeadlineMs, null);
    assert.equal(job.ttlAfterFinishedMs, 24 * 3600_000);
    assert.deepEqual(job.container.command, ['sh', '-c', 'exit 0']);
    assert.deepEqual(job.container.env, { STEP: '1' });
    assert.deepEqual(job.container.restart, { condition: 'none', maxAttempts: 0 });
    assert.deepEqual(job.container.ports, []);
    assert.equal(job.container.healthcheck, null);
  });

  void test('takes completions, parallelism, back-off, deadline and time to live', () => {
    const text = `${migrate}  completions: 3\n  parallelism: 2\n  backoffLimit: 1\n  activeDeadline: 10m\n  ttlAfterFinished: 1h\n`;
    const result = loadManifests([file('jobs.yaml', text)], { revision: 'r1' });
    assert.ok(result.ok, JSON.stringify(result));
    const job = result.desired.jobs?.[0];
    assert.equal(job?.completions, 3);
    assert.equal(job.parallelism, 2);
    assert.equal(job.backoffLimit, 1);
    assert.equal(job.activeDeadlineMs, 600_000);
    assert.equal(job.ttlAfterFinishedMs, 3600_000);
  });

  void test('refuses Service-only fields and bad values with file:line:col', () => {
    const text = `${migrate}  replicas: 2\n  completions: 0\n  activeDeadline: soon\n`;
    assert.deepEqual(problemsOf(loadManifests([file('jobs.yaml', text)], { revision: 'r1' })), [
      'jobs.yaml:8:3: spec: unknown field "replicas"',
      'jobs.yaml:9:16: spec.completions: must be >= 1, got 0',
      'jobs.yaml:10:19: spec.activeDeadline: must be a duration such as "500ms", "10s", "1m30s" or "2h", got "soon"',
    ]);
  });

  void test('checks the references of its container like a Service', () => {
    const text = `${migrate}  configs: [{ source: nope, key: a, target: /a }]\n`;
    const problems = problemsOf(loadManifests([file('jobs.yaml', text)], { revision: 'r1' }));
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /^jobs\.yaml:8:.*nope/);
  });

  void test('a Service depends on Jobs of its namespace that exist', () => {
    const web = `apiVersion: berth/v1
kind: Service
metadata: { name: web }
spec:
  image: busybox:1.36
  dependsOn: [{ job: migrate }, { job: migrat }]
`;
    const result = loadManifests([file('jobs.yaml', migrate), file('web.yaml', web)], { revision: 'r1' });
    const problems = problemsOf(result);
    assert.equal(problems.length, 1);
    assert.match(
      problems[0] ?? '',
      /^web\.yaml:6:\d+: spec\.dependsOn\[1\]\.job: Job "migrat" does not exist/,
    );
    assert.match(problems[0] ?? '', /migrate/);
    const fine = loadManifests(
      [file('jobs.yaml', migrate), file('web.yaml', web.replace(', { job: migrat }', ''))],
      {
        revision: 'r1',
      },
    );
    assert.ok(fine.ok, JSON.stringify(fine));
    assert.deepEqual(fine.desired.services[0]?.dependsOn, [{ job: 'migrate' }]);
  });
});
