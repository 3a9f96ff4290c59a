/** A RuntimeContainer for unit tests of the agent's pure parts. */
import { LABELS } from '../../src/api/types.js';
import type { RuntimeContainer } from '../../src/agent/runtime.js';

export const HTTP_CHECK_LABEL = JSON.stringify({
  probe: { type: 'http', port: 8080, path: '/', expectStatus: [] },
  intervalMs: 1000,
  timeoutMs: 500,
  retries: 3,
  startPeriodMs: 0,
});

export function runtimeContainer(overrides: Partial<RuntimeContainer> = {}): RuntimeContainer {
  return {
    id: 'id-1',
    name: 'node-1.web.1',
    image: 'web:1',
    labels: {
      [LABELS.managed]: 'true',
      [LABELS.node]: 'node-1',
      [LABELS.namespace]: 'default',
      [LABELS.service]: 'web',
      [LABELS.slot]: '1',
      [LABELS.specHash]: 'abc',
      [LABELS.revision]: 'r1',
    },
    state: 'running',
    exitCode: null,
    oomKilled: false,
    error: null,
    restartCount: 0,
    createdAt: '2026-01-01T00:00:00Z',
    startedAt: '2026-01-01T00:00:01Z',
    finishedAt: null,
    ports: [],
    ...overrides,
  };
}
