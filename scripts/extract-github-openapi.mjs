#!/usr/bin/env node
// Extracts the operations berth calls on GitHub from GitHub's published OpenAPI description
// (npm package @octokit/openapi, dereferenced), so tests can check berth's requests against the
// real request schemas without a 30 MB dev dependency.
//   npm pack @octokit/openapi@23 && tar xzf octokit-openapi-*.tgz package/generated/api.github.com.deref.json
//   node scripts/extract-github-openapi.mjs package/generated/api.github.com.deref.json > test/fixtures/forge/github-openapi-subset.json
import { readFileSync } from 'node:fs';

const wanted = ['repos/create-commit-status', 'issues/create-comment', 'issues/update-comment', 'issues/list-comments'];
const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const operations = {};
for (const [path, methods] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(methods)) {
    if (!wanted.includes(op.operationId)) continue;
    operations[op.operationId] = {
      method: method.toUpperCase(),
      path,
      requestBody: op.requestBody?.content?.['application/json']?.schema ?? null,
    };
  }
}
const missing = wanted.filter((id) => !(id in operations));
if (missing.length > 0) throw new Error(`not in the description: ${missing.join(', ')}`);
process.stdout.write(
  `${JSON.stringify({ source: `@octokit/openapi ${spec.info.version} (${spec.info.title})`, operations }, null, 2)}\n`,
);
