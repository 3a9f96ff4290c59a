/**
 * The layering of src/, checked by `npm run lint` (docs/architecture.md draws it).
 * Data flows one way: each layer may import only the layers listed for it (and itself).
 * Unit tests beside the code are free to import what they exercise.
 */
const layers = {
  core: [],
  manifests: ['core'],
  api: ['core', 'manifests'],
  source: ['core'],
  forge: ['core'],
  notify: ['core', 'manifests'],
  secrets: ['core', 'manifests'],
  compose: ['core', 'manifests', 'secrets'],
  mesh: ['core', 'manifests', 'api'],
  agent: ['core', 'manifests', 'api', 'mesh'],
  cluster: ['core', 'manifests', 'api'],
  plan: ['core', 'manifests', 'api'],
  rollout: ['core', 'manifests', 'api', 'plan', 'secrets'],
  operator: ['core', 'manifests', 'api', 'source', 'forge', 'notify', 'secrets', 'plan', 'rollout', 'mesh'],
  cli: [
    'core',
    'manifests',
    'api',
    'source',
    'forge',
    'notify',
    'secrets',
    'plan',
    'rollout',
    'mesh',
    'agent',
    'cluster',
    'operator',
    'compose',
  ],
};

const alternatives = (names) => (names.length === 0 ? '(?!)' : `(${names.join('|')})`);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A circle of imports means two modules are one concept, or one of them is in the wrong layer.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-layers-known',
      severity: 'error',
      comment: 'Every folder of src/ is a layer named in .dependency-cruiser.cjs.',
      from: { path: '^src/', pathNot: [`^src/${alternatives(Object.keys(layers))}/`] },
      to: {},
    },
    ...Object.entries(layers).map(([layer, allowed]) => ({
      name: `layer-${layer}`,
      severity: 'error',
      comment: `${layer} may import only ${allowed.length === 0 ? 'itself' : allowed.join(', ')} (and packages)`,
      from: { path: `^src/${layer}/`, pathNot: '\\.test\\.ts$' },
      to: { path: '^src/', pathNot: [`^src/${alternatives([layer, ...allowed])}/`] },
    })),
    {
      name: 'commander-only-in-cli',
      severity: 'error',
      comment: 'Argument parsing belongs to the CLI; lower layers throw BerthError.',
      from: { path: '^src/', pathNot: ['^src/cli/'] },
      to: { path: 'node_modules/commander/' },
    },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      comment: 'Production code never imports tests or their helpers.',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: ['\\.test\\.ts$', '^test/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
