// Step two of `npm run build`, after tsc: the JSON Schema validators compiled into modules of
// plain functions beside the modules that use them (src/core/prebuilt-validators.ts says why).
import { rm, writeFile } from 'node:fs/promises';

const built = [
  ['../dist/manifests/schema.js', '../dist/manifests/schema-validators.js', 'schemaValidatorsModule'],
  ['../dist/api/agent-calls.js', '../dist/api/agent-call-validators.js', 'agentCallValidatorsModule'],
];
// What an earlier build wrote would be loaded by the very modules that write it anew.
for (const [, output] of built) await rm(new URL(output, import.meta.url), { force: true });
for (const [module, output, generate] of built) {
  const source = (await import(new URL(module, import.meta.url).href))[generate]();
  await writeFile(new URL(output, import.meta.url), source);
}
