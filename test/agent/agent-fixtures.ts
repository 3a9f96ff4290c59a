/** Shared setup of the agent suites: a node per test run, replica requests, state directories. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LABELS, type ReplicaRequest } from '../../src/api/types.js';
import { isTmpfsMountPoint } from '../../src/agent/file-store.js';
import type { HealthcheckSpec } from '../../src/manifests/types.js';
import { removeContainersByLabel, TEST_IMAGES, uniqueTestId } from '../helpers/docker.js';

const run = promisify(execFile);

export const httpCheck = (overrides: Partial<HealthcheckSpec> = {}, path = '/'): HealthcheckSpec => ({
  probe: { type: 'http', port: 8080, path, expectStatus: [] },
  intervalMs: 200,
  timeoutMs: 1000,
  retries: 2,
  startPeriodMs: 0,
  ...overrides,
});

/** A replica of berth-test/web:v1 serving /www on 8080; init makes SIGTERM stop it at once. */
export function webReplica(
  node: string,
  slot: string,
  overrides: Partial<ReplicaRequest> = {},
): ReplicaRequest {
  return {
    name: `${node}.web.${slot}`,
    namespace: 'default',
    service: 'web',
    slot,
    specHash: 'a'.repeat(64),
    revision: 'b'.repeat(40),
    image: TEST_IMAGES.webV1,
    command: null,
    args: null,
    env: {},
    ports: [{ target: 8080, protocol: 'tcp' }],
    files: [],
    healthcheck: httpCheck(),
    limits: { nanoCpus: 0, memoryBytes: 0 },
    restart: { condition: 'any', maxAttempts: 0 },
    stopGracePeriodMs: 1000,
    user: null,
    workingDir: null,
    init: true,
    specSummary: { image: TEST_IMAGES.webV1 },
    ...overrides,
  };
}

export interface TestNode {
  /** Unique per test run: the agent's node name, and the label value cleanup goes by. */
  name: string;
  stateDir: string;
  cleanup(): Promise<void>;
}

export async function createTestNode(): Promise<TestNode> {
  const name = uniqueTestId('bt');
  const stateDir = await mkdtemp(path.join(tmpdir(), `berth-agent-${name}-`));
  return {
    name,
    stateDir,
    async cleanup() {
      await removeContainersByLabel(LABELS.node, name);
      await removeStateDir(stateDir);
    },
  };
}

/** Removes a state dir, unmounting the secrets tmpfs the agent may have mounted inside it. */
export async function removeStateDir(stateDir: string): Promise<void> {
  const secrets = path.join(stateDir, 'secrets');
  if (await isTmpfsMountPoint(secrets).catch(() => false)) await run('umount', [secrets]);
  await rm(stateDir, { recursive: true, force: true });
}

/** The first published host endpoint of a container port, as http://ip:port. */
export function publishedUrl(
  ports: { target: number; hostIp: string; hostPort: number }[],
  target: number,
): string {
  const port = ports.find((p) => p.target === target && !p.hostIp.includes(':'));
  if (port === undefined) throw new Error(`port ${target} is not published: ${JSON.stringify(ports)}`);
  return `http://${port.hostIp}:${port.hostPort}`;
}
