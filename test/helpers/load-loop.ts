import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { dockerExec } from './docker.js';

/** A port free on `host` right now, for a published port in a test (the mesh binds it later). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return address.port;
}

/**
 * One GET on a fresh connection (no keep-alive), so every request goes through the balancer anew;
 * or over `agent`'s kept-alive connections.
 */
export function getOnce(
  host: string,
  port: number,
  timeoutMs = 5000,
  path = '/',
  agent: Agent | false = false,
): Promise<{ status: number; body: string; ms: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: body.trim(),
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface LoadReport {
  requests: number;
  failed: number;
  /** Answer bodies and how often each came back (200 only). */
  bodies: Map<string, number>;
  /** The first few failures, for the assertion message. */
  failures: string[];
  /** When each failed request was sent (Date.now()). */
  failedAt: number[];
}

/** Asserts that no request of the loop failed, naming the first failures otherwise. */
export function assertNoneFailed(report: LoadReport): void {
  assert.equal(report.failed, 0, `failed ${report.failed}/${report.requests}: ${report.failures.join('; ')}`);
}

/**
 * A steady, bounded request loop on loopback: `perSecond` requests a second until `stop` is
 * called or `maxMs` has passed, whichever comes first; never more than `perSecond * maxMs / 1000`
 * requests. A request fails on a connection error, a timeout or any status but 200.
 */
export function startLoadLoop(options: {
  host: string;
  port: number;
  perSecond: number;
  maxMs: number;
  /** Send over a few kept-alive connections instead of a new connection per request. */
  keepAlive?: boolean;
}): {
  stop: () => Promise<LoadReport>;
} {
  const agent = options.keepAlive ? new Agent({ keepAlive: true, maxSockets: 2 }) : false;
  const report: LoadReport = { requests: 0, failed: 0, bodies: new Map(), failures: [], failedAt: [] };
  const inFlight = new Set<Promise<void>>();
  const limit = Math.floor((options.perSecond * options.maxMs) / 1000);
  const fire = (): void => {
    if (report.requests >= limit) return stopTimer();
    report.requests++;
    const sentAt = Date.now();
    const one = getOnce(options.host, options.port, 5000, '/', agent)
      .then((answer) => {
        if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
        report.bodies.set(answer.body, (report.bodies.get(answer.body) ?? 0) + 1);
      })
      .catch((error: unknown) => {
        report.failed++;
        report.failedAt.push(sentAt);
        if (report.failures.length < 5)
          report.failures.push(error instanceof Error ? error.message : String(error));
      })
      .finally(() => inFlight.delete(one));
    inFlight.add(one);
  };
  const timer = setInterval(fire, 1000 / options.perSecond);
  const stopTimer = (): void => clearInterval(timer);
  return {
    async stop() {
      stopTimer();
      await Promise.all([...inFlight]);
      if (agent) agent.destroy();
      return report;
    },
  };
}

/**
 * A request loop inside a container (busybox sh + wget), every 100 ms until stopped or `maxSeconds`
 * pass: how another service sees a service it reaches by name. `timeout` bounds each request
 * (the offline busybox stand-in crashes on wget's own -T).
 */
export function startLoopInside(
  container: string,
  url: string,
  options: { socketPath?: string; maxSeconds?: number } = {},
): { stop(): Promise<{ ok: number; failed: number; bodies: string[]; output: string }> } {
  const maxSeconds = options.maxSeconds ?? 120;
  const exec = (cmd: string[], timeoutMs?: number) =>
    dockerExec(container, cmd, { ...options, ...(timeoutMs ? { timeoutMs } : {}) });
  const done = exec(
    [
      'sh',
      '-c',
      `ok=0; bad=0; rm -f /tmp/stop /tmp/bodies; end=$(( $(date +%s) + ${maxSeconds} )); ` +
        'while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/stop ]; do ' +
        `if body=$(timeout 5 wget -q -O - ${url}); then ok=$((ok+1)); echo "$body" >> /tmp/bodies; ` +
        'else bad=$((bad+1)); fi; sleep 0.1; done; echo "ok=$ok bad=$bad"',
    ],
    (maxSeconds + 30) * 1000,
  );
  return {
    async stop() {
      await exec(['touch', '/tmp/stop']);
      const result = await done;
      const counts = /ok=(\d+) bad=(\d+)/.exec(result.output);
      if (!counts) throw new Error(`the request loop in ${container} did not report: ${result.output}`);
      const seen = await exec(['sort', '-u', '/tmp/bodies']);
      return {
        ok: Number(counts[1]),
        failed: Number(counts[2]),
        bodies: seen.output.trim().split('\n').filter(Boolean),
        output: result.output,
      };
    },
  };
}
