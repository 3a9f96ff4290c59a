/**
 * The agent's HTTP layer on a real port in front of a stand-in agent: what it answers to requests
 * that never become an agent call (no token, no route, no or bad body, too large a body), how
 * errors of a call travel, and HTTPS. The calls themselves against a real engine are in
 * test/agent/agent-server.test.ts.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { NodeAgent } from '../api/types.js';
import { BerthError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { createSelfSignedCertificate, certificateFingerprint } from '../core/self-signed-certificate.js';
import { formatAgentToken } from './agent-token.js';
import { createAgentClient } from './client.js';
import { AGENT_BODY_LIMIT_BYTES } from './protocol.js';
import { createAgentServer } from './server.js';

const TOKEN = 'server-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const removed: string[] = [];
const snapshot = { name: 'n', replicas: [] };

const agent = {
  name: 'n',
  snapshot: () => Promise.resolve(snapshot),
  removeReplica: (name: string) => {
    removed.push(name);
    if (name === 'refused') {
      return Promise.reject(
        new BerthError('ERR_CONTAINER_NOT_FOUND', 'replica refused is busy', { data: { name } }),
      );
    }
    if (name === 'broken') return Promise.reject(new Error('the engine fell over'));
    return Promise.resolve();
  },
} as unknown as NodeAgent;

const logLines: { level: number; msg: string; url?: string }[] = [];
const log = pino({ level: 'info' }, { write: (line: string) => logLines.push(JSON.parse(line) as never) });
const server = createAgentServer({ agent, token: TOKEN, log });
let url: string;

before(async () => {
  url = await server.listen({ host: '127.0.0.1', port: 0 });
});

after(() => server.close());

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** The whole answer to a request, once it has ended. */
function answerOf(resolve: (answer: Answer) => void, reject: (error: Error) => void) {
  return (res: IncomingMessage): void => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () =>
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
    );
    res.on('error', reject);
  };
}

/** One request on its own connection; `body` is written as one chunk, `end: false` leaves the request open. */
function send(
  method: string,
  path: string,
  options: { headers?: OutgoingHttpHeaders; body?: string | Buffer; end?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}${path}`,
      { method, headers: options.headers ?? {}, agent: false },
      answerOf(resolve, reject),
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    if (options.end !== false) req.end();
  });
}

/** One request through `agent` (kept-alive connections), as JSON when there is a body. */
function fetchVia(agent: Agent, target: string, method: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const req = httpRequest(target, { method, headers, agent }, answerOf(resolve, reject));
    req.on('error', reject);
    req.end(body);
  });
}

let closingServer: ReturnType<typeof createAgentServer> | undefined;

const wire = (answer: Answer) => JSON.parse(answer.body) as { code: string; message: string; data?: unknown };

test('healthz answers without a token', async () => {
  const answer = await send('GET', '/healthz');
  assert.equal(answer.status, 200);
  assert.deepEqual(JSON.parse(answer.body), { ok: true });
});

test('a request without the token is refused with 401 and a warning in the log', async () => {
  for (const headers of [{}, { authorization: `Bearer ${TOKEN}-` }, { authorization: TOKEN }]) {
    const answer = await send('GET', '/v1/node', { headers });
    assert.equal(answer.status, 401);
    assert.deepEqual(wire(answer), {
      code: 'ERR_AGENT_UNAUTHORIZED',
      message: 'missing or wrong agent token (send Authorization: Bearer <token>)',
    });
  }
  // An unknown route is no different: without the token nothing about the API is told.
  assert.equal((await send('GET', '/v1/secrets')).status, 401);
  const warned = logLines.filter((line) => line.msg === 'agent request without a valid token');
  assert.equal(warned.length, 4);
  assert.equal(warned[0]?.url, '/v1/node');
});

test('an unknown route or method is 404, naming the request', async () => {
  const unknown = await send('GET', '/v1/nothing?x=1', { headers: auth });
  assert.equal(unknown.status, 404);
  assert.deepEqual(wire(unknown), {
    code: 'ERR_BAD_REQUEST',
    message: 'bad request: no agent call at GET /v1/nothing?x=1',
  });
  assert.equal((await send('POST', '/v1/node', { headers: auth })).status, 404);
  assert.equal((await send('GET', '/v1/node/', { headers: auth })).status, 404);
  assert.equal((await send('DELETE', '/v1/replicas/', { headers: auth })).status, 404);
});

test('a route answers its call; a query string does not change the route', async () => {
  const answer = await send('GET', '/v1/node?fresh=1', { headers: auth });
  assert.equal(answer.status, 200);
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  assert.deepEqual(JSON.parse(answer.body), snapshot);
});

test('a ":name" is decoded before the call sees it; a call without a result is 204', async () => {
  const answer = await send('DELETE', `/v1/replicas/${encodeURIComponent('ns.web-1')}%2Ex`, {
    headers: auth,
  });
  assert.equal(answer.status, 204);
  assert.equal(answer.body, '');
  assert.equal(removed.at(-1), 'ns.web-1.x');
  const badEncoding = await send('DELETE', '/v1/replicas/%E0%A4%A', { headers: auth });
  assert.equal(badEncoding.status, 400);
  assert.equal(wire(badEncoding).code, 'ERR_BAD_REQUEST');
});

test('an empty or invalid JSON body is 400, another media type 415', async () => {
  const json = { ...auth, 'content-type': 'application/json' };
  const empty = await send('POST', '/v1/changes', { headers: { ...json, 'content-length': '0' } });
  assert.equal(empty.status, 400);
  assert.deepEqual(wire(empty), {
    code: 'ERR_BAD_REQUEST',
    message: "bad request: Body cannot be empty when content-type is set to 'application/json'",
  });
  const invalid = await send('POST', '/v1/changes', { headers: json, body: '{"since": nu' });
  assert.equal(invalid.status, 400);
  assert.equal(wire(invalid).message, "Body is not valid JSON but content-type is set to 'application/json'");
  const poisoned = await send('POST', '/v1/changes', {
    headers: json,
    body: '{"since": null, "timeoutMs": 1, "__proto__": {"x": 1}}',
  });
  assert.equal(poisoned.status, 400);
  const form = await send('POST', '/v1/changes', {
    headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'since=x',
  });
  assert.equal(form.status, 415);
  assert.deepEqual(wire(form), { code: 'ERR_BAD_REQUEST', message: 'Unsupported Media Type' });
});

test('a body that breaks the call schema is 400 naming the field', async () => {
  const answer = await send('POST', '/v1/changes', {
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ since: null, timeoutMs: 'soon' }),
  });
  assert.equal(answer.status, 400);
  assert.match(wire(answer).message, /^bad request: awaitChange: .*timeoutMs/);
});

test('a body over the limit is 413, read no further, and the agent goes on serving', async () => {
  const headers = { ...auth, 'content-type': 'application/json' };
  const announced = await send('PUT', '/v1/mesh', {
    headers: { ...headers, 'content-length': String(AGENT_BODY_LIMIT_BYTES + 1) },
    body: '{"table":',
    end: false,
  });
  assert.equal(announced.status, 413);
  assert.equal(announced.headers['connection'], 'close');
  assert.deepEqual(wire(announced), {
    code: 'ERR_BAD_REQUEST',
    message: `request body larger than ${AGENT_BODY_LIMIT_BYTES} bytes`,
  });
  // Chunked, so the size shows only while reading.
  const streamed = await send('PUT', '/v1/mesh', {
    headers,
    body: Buffer.alloc(AGENT_BODY_LIMIT_BYTES + 1, 0x20),
    end: false,
  });
  assert.equal(streamed.status, 413);
  assert.equal((await send('GET', '/v1/node', { headers: auth })).status, 200);
});

test("an agent's error travels with its status and data; any other error is 500 and logged", async () => {
  const refused = await send('DELETE', '/v1/replicas/refused', { headers: auth });
  assert.equal(refused.status, new BerthError('ERR_CONTAINER_NOT_FOUND', '').httpStatus);
  assert.deepEqual(wire(refused), {
    code: 'ERR_CONTAINER_NOT_FOUND',
    message: 'replica refused is busy',
    data: { name: 'refused' },
  });
  const broken = await send('DELETE', '/v1/replicas/broken', { headers: auth });
  assert.equal(broken.status, 500);
  assert.deepEqual(wire(broken), { code: 'ERR_INTERNAL', message: 'agent error: the engine fell over' });
  assert.ok(
    logLines.some((line) => line.msg === 'agent request failed' && line.url === '/v1/replicas/broken'),
  );
});

test('with a key and certificate it serves HTTPS, and a client pinning the certificate gets through', async () => {
  const identity = createSelfSignedCertificate({ commonName: 'agent-test', days: 1 });
  const secure = createAgentServer({ agent, token: TOKEN, log: silentLogger(), tls: identity });
  const secureUrl = await secure.listen({ host: '127.0.0.1', port: 0 });
  const token = formatAgentToken({
    fingerprint: certificateFingerprint(identity.certificatePem),
    secret: TOKEN,
  });
  const client = createAgentClient({ url: secureUrl, token, nodeName: 'n' });
  try {
    assert.match(secureUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await client.snapshot()).name, 'n');
  } finally {
    await client.close();
    await secure.close();
  }
});

test('a request on a kept-alive connection while the server closes is 503, and close waits for the call in flight', async () => {
  let answerPoll: (value: { mark: string }) => void = () => {};
  const polled = new Promise<void>((resolve) => {
    const slow = {
      awaitChange: () => {
        resolve();
        return new Promise((answer) => (answerPoll = answer));
      },
    } as unknown as NodeAgent;
    closingServer = createAgentServer({ agent: slow, token: TOKEN, log: silentLogger() });
  });
  const closingUrl = await closingServer!.listen({ host: '127.0.0.1', port: 0 });
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const ask = (path: string, body?: string) =>
      fetchVia(keepAlive, `${closingUrl}${path}`, body === undefined ? 'GET' : 'POST', body);
    const poll = ask('/v1/changes', JSON.stringify({ since: null, timeoutMs: 1000 }));
    await polled;
    let closed = false;
    const closingDone = closingServer!.close().then(() => (closed = true));
    // Queued behind the poll on the one kept-alive connection: it reaches the server after close().
    const late = ask('/v1/node');
    answerPoll({ mark: 'm1' });
    assert.equal((await poll).status, 200);
    assert.equal(closed, false);
    const refused = await late;
    assert.equal(refused.status, 503);
    assert.equal(wire(refused).code, 'ERR_AGENT_UNREACHABLE');
    await closingDone;
  } finally {
    keepAlive.destroy();
  }
});
