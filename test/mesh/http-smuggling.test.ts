import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  SCHEDULE_NEVER,
  startBerth,
  targetArgs,
  type BerthProcess,
} from '../helpers/berth-cli.js';
import { requireDocker, requireTestImages, testDocker } from '../helpers/docker.js';
import { createTestRepo, type TestRepo } from '../helpers/git-repo.js';
import { freePort, getOnce } from '../helpers/load-loop.js';
import { manifestFile, namespaceManifest, webService } from '../helpers/manifests.js';
import { rawExchange, readMessages } from '../helpers/raw-http.js';
import { removeNamespace, replicasOf } from '../operator/cluster-probe.js';

const ns = `smug${Date.now().toString(36)}`;
const node = `test-${ns}`;
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n';
const chunk = (data: string): string => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;
const post = (head: string, body: string): string => `POST /first HTTP/1.1\r\nhost: x\r\n${head}\r\n${body}`;

/** The smuggling forms, each hiding GET /smuggled; the unit tests (http-balancer.test.ts) have them all. */
const AMBIGUOUS: Record<string, string> = {
  'CL.TE': post('content-length: 42\r\ntransfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'TE.CL': post('transfer-encoding: chunked\r\ncontent-length: 4\r\n', `${chunk(SMUGGLED)}0\r\n\r\n`),
  'TE.TE': post('transfer-encoding: x\r\nTransfer-encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
  'CL.CL': post('content-length: 0\r\ncontent-length: 42\r\n', SMUGGLED),
  'obs-fold': post('transfer-encoding: x\r\n chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
};

describe('HTTP mesh in front of a real replica: no request smuggling (berth run, real engine)', () => {
  let repo: TestRepo;
  let stateDir: string;
  let operator: BerthProcess | null = null;
  let published: number;

  before(async () => {
    await requireDocker();
    await requireTestImages();
    published = await freePort();
    repo = await createTestRepo({
      'deploy/all.yaml': manifestFile(
        namespaceManifest(ns),
        webService({
          namespace: ns,
          // -vv: the replica logs the path of every request it reads.
          command: ['httpd', '-f', '-vv', '-p', '8080', '-h', '/www'],
          replicas: 1,
          ports: [{ target: 8080, published, appProtocol: 'http' }],
        }),
      ),
    });
    stateDir = await mkdtemp(join(tmpdir(), 'berth-smuggling-'));
    operator = await startBerth('run', [
      ...targetArgs({ repo: repo.dir, path: 'deploy', stateDir, node }),
      ...['--service-addresses', 'off'],
      ...SCHEDULE_NEVER,
    ]);
  });
  after(async () => {
    await operator?.stop('SIGKILL');
    await removeNamespace(ns);
    await repo.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  test('ambiguous requests get 400 at the published port and never reach the replica', async () => {
    await eventually(
      'the published port answers',
      async () => (await getOnce('127.0.0.1', published)).body === 'v1',
    );
    for (const [form, bytes] of Object.entries(AMBIGUOUS)) {
      const { messages, rest } = readMessages(await rawExchange(published, bytes), true);
      assert.deepEqual([messages.map((m) => m.line.split(' ')[1]), rest], [['400'], ''], form);
    }
    // A GET with a chunked body: the replica must get it framed, not its body as a second request.
    const get = `GET /index.html HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${chunk(SMUGGLED)}0\r\n\r\n`;
    const { messages } = readMessages(await rawExchange(published, get), true);
    assert.deepEqual(
      messages.map((m) => [m.line.split(' ')[1], m.body.trim()]),
      [['200', 'v1']],
    );
    const [replica] = await replicasOf(ns, 'web');
    assert.ok(replica);
    const logged = await eventually('the replica logged the GET with a body', async () => {
      // httpd logs to stderr; the frame headers of Docker's log stream do not matter here.
      const log = (
        await testDocker().getContainer(replica.name).logs({ stdout: true, stderr: true })
      ).toString('latin1');
      return log.includes('url:/index.html') ? log : null;
    });
    const paths = [...logged.matchAll(/url:(\S+)/g)].map((m) => m[1]);
    assert.ok(paths.length >= 2, logged);
    assert.deepEqual(
      paths.filter((p) => p !== '/'),
      ['/index.html'],
      'nothing but the health checks, the first GET and the GET with a body',
    );
  });
});
