/**
 * Helpers for every test that uses the real Docker engine. Such tests FAIL (never skip) when the
 * engine is not there: call requireDocker() first. Every container a test makes must carry a
 * label unique to the test run so removeContainersByLabel() can clean up after it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);

/** The offline stand-in images made by scripts/build-images.sh (`npm run images`). */
export const TEST_IMAGES = {
  busybox: 'busybox:1.36',
  webV1: 'berth-test/web:v1',
  webV2: 'berth-test/web:v2',
  crash: 'berth-test/crash:v1',
} as const;

/**
 * An image reference that exists nowhere: its registry is a closed port on loopback, so a pull
 * attempt fails at once and never leaves the machine.
 */
export const MISSING_IMAGE = '127.0.0.1:9/berth-test/missing:v1';

let docker: Docker | null = null;

export function testDocker(): Docker {
  docker ??= new Docker({ socketPath: process.env['BERTH_TEST_DOCKER_SOCKET'] ?? '/var/run/docker.sock' });
  return docker;
}

/** Throws a clear error when the engine does not answer: Docker-backed tests must fail, not skip. */
export async function requireDocker(): Promise<void> {
  try {
    await testDocker().ping();
  } catch (error) {
    throw new Error(
      `these tests need a running Docker engine (docker info must answer; .ci/run starts one): ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Builds the offline test images when any is missing (scripts/build-images.sh is idempotent). */
export async function requireTestImages(): Promise<void> {
  await requireDocker();
  const missing: string[] = [];
  for (const image of Object.values(TEST_IMAGES)) {
    try {
      await testDocker().getImage(image).inspect();
    } catch {
      missing.push(image);
    }
  }
  if (missing.length === 0) return;
  const script = fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url));
  const built = spawnSync('bash', [script], { encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(
      `test images ${missing.join(', ')} are missing and scripts/build-images.sh failed:\n${built.stderr}`,
    );
  }
}

/** Short, unique per call, safe in container names, labels and DNS labels. */
export function uniqueTestId(prefix = 't'): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Force-removes every container (any state) carrying label=value. */
export async function removeContainersByLabel(label: string, value: string): Promise<void> {
  const containers = await testDocker().listContainers({
    all: true,
    filters: { label: [`${label}=${value}`] },
  });
  await Promise.all(
    containers.map(async (container) => {
      try {
        await testDocker().getContainer(container.Id).remove({ force: true, v: true });
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      }
    }),
  );
}

/** Runs the docker CLI and returns stdout; rejects with stderr on a non-zero exit. */
export async function dockerCli(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await run('docker', args, {
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || String(error)}`);
  }
}

/**
 * Runs a command in a container: `{ exitCode, output }` (stdout+stderr), for asserting what a
 * process inside sees (files, permissions, environment).
 */
export async function dockerExec(
  container: string,
  cmd: string[],
  options: { socketPath?: string; timeoutMs?: number } = {},
): Promise<{ exitCode: number; output: string }> {
  const host = options.socketPath === undefined ? [] : ['-H', `unix://${options.socketPath}`];
  try {
    const { stdout, stderr } = await run('docker', [...host, 'exec', container, ...cmd], {
      timeout: options.timeoutMs ?? 30_000,
    });
    return { exitCode: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { exitCode: failed.code, output: (failed.stdout ?? '') + (failed.stderr ?? '') };
  }
}

/** `docker run -d` with a cleanup label; returns the container id. */
export async function dockerRun(options: {
  name: string;
  image: string;
  labels: Record<string, string>;
  cmd?: string[];
  publish?: string[];
}): Promise<string> {
  const args = ['run', '-d', '--name', options.name];
  for (const [key, value] of Object.entries(options.labels)) args.push('--label', `${key}=${value}`);
  for (const publish of options.publish ?? []) args.push('-p', publish);
  args.push(options.image, ...(options.cmd ?? []));
  return (await dockerCli(args)).trim();
}
