import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { constants as zlib, gzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError } from '../core/errors.js';
import {
  cookieValue,
  csrfMatches,
  DashboardSessions,
  SESSION_COOKIE,
  SESSION_TTL_MS,
  type Session,
} from './dashboard-auth.js';
import { NDJSON_CONTENT_TYPE, writeLogStream } from '../api/log-stream.js';
import { dashboardPage, NOSCRIPT_STYLE, REVEAL_SCRIPT, type DashboardAssets } from './dashboard-page.js';
import type { HeadPlan } from './head-plan.js';
import type { Operator } from './operator.js';
import type { DashboardData, NodeControl } from './overview.js';

/** The client's files: plain JavaScript and CSS beside the package, found from src/ and from dist/. */
const ASSETS = new URL('../../assets/dashboard/', import.meta.url);

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Headers of every dashboard answer; the page's stylesheets and reveal script are inline, allowed by their hashes. */
function securityHeaders(style: string): Record<string, string> {
  return {
    // No script but the client's file and the page's own reveal script, no style but the page's
    // own, nothing from elsewhere: a value from the cluster cannot add either.
    'content-security-policy':
      `default-src 'none'; script-src 'self' ${sha256(REVEAL_SCRIPT)}; ` +
      `style-src ${sha256(style)} ${sha256(NOSCRIPT_STYLE)}; img-src 'self'; ` +
      "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    // Not no-referrer: under it a browser sends `Origin: null` with a form, and the login checks Origin.
    'referrer-policy': 'same-origin',
  };
}

/** The page and the overview change with the cluster; the client's file is versioned instead. */
const NO_STORE = 'no-store';
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Smaller answers are sent as they are: compressing them saves less than a packet. */
const COMPRESS_FROM_BYTES = 1024;
const gzipAsync = promisify(gzip);

/**
 * Sends text gzipped when the browser takes it and it is worth it (the page of 100 services is
 * ~100 KiB of HTML and JSON, a tenth of that gzipped).
 */
async function sendText(
  request: FastifyRequest,
  reply: FastifyReply,
  type: string,
  text: string | { plain: string; gzipped: Buffer },
): Promise<FastifyReply> {
  reply.type(type).header('vary', 'accept-encoding');
  const plain = typeof text === 'string' ? text : text.plain;
  const accepts = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  if (!accepts || Buffer.byteLength(plain) < COMPRESS_FROM_BYTES) return reply.send(plain);
  // Made per request: the fastest level (a tenth larger than the default, a fraction of its time).
  const gzipped =
    typeof text === 'string' ? await gzipAsync(plain, { level: zlib.Z_BEST_SPEED }) : text.gzipped;
  return reply.header('content-encoding', 'gzip').send(gzipped);
}

export interface DashboardOptions {
  operator: Pick<Operator, 'trigger'>;
  overview: DashboardData;
  /** null without --cluster-listen: nodes are shown but cannot be drained from the page. */
  nodes: NodeControl | null;
  token: string;
}

/** Lines of a replica the page asks for at most (it shows the last ones, then follows). */
export const MAX_DASHBOARD_LOG_TAIL = 1000;
const DEFAULT_DASHBOARD_LOG_TAIL = 100;
/** Computing the head's plan reads git and every node: pages opened together share one. */
const HEAD_PLAN_MAX_AGE_MS = 2_000;

/**
 * The web dashboard of `berth run --listen`: the page at `/`, its JSON at `GET /v1/overview`
 * (read-only, like /healthz), and actions for a signed-in browser. An action needs the session
 * cookie (else 401), the session's CSRF token in `x-csrf-token` and an Origin of this server
 * (else 403). A replica's logs need the session cookie (a service's output may hold what only
 * its operators should read).
 */
export async function dashboardRoutes(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const sessions = new DashboardSessions(options.token);
  const [script, style] = await Promise.all([
    readFile(new URL('app.js', ASSETS), 'utf8'),
    readFile(new URL('style.css', ASSETS), 'utf8'),
  ]);
  const scriptVersion = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const assets: DashboardAssets = { style, scriptPath: `/dashboard/app.js?v=${scriptVersion}` };
  const compressedScript = {
    plain: script,
    gzipped: await gzipAsync(script, { level: zlib.Z_BEST_COMPRESSION }),
  };
  const headers = securityHeaders(style);
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(headers);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', NO_STORE);
  });
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  const sessionOf = (request: FastifyRequest): Session | null =>
    sessions.find(cookieValue(request.headers.cookie, SESSION_COOKIE));

  app.get('/', async (request, reply) => {
    const session = sessionOf(request);
    const query = request.query as Record<string, string | undefined>;
    const page = dashboardPage({
      overview: await options.overview.read(),
      csrf: session?.csrf ?? null,
      loginFailed: query['login'] === 'failed',
      assets,
    });
    return sendText(request, reply, 'text/html; charset=utf-8', page);
  });
  app.get('/dashboard/app.js', async (request, reply) => {
    const query = request.query as Record<string, string | undefined>;
    // Kept for a year only under the version the page names: an old page's request stays fresh.
    if (query['v'] === scriptVersion) reply.header('cache-control', IMMUTABLE);
    return sendText(request, reply, 'text/javascript; charset=utf-8', compressedScript);
  });
  // Browsers ask for it; there is none (and a 404 would show as an error in the console).
  app.get('/favicon.ico', async (_request, reply) => reply.code(204).send());
  registerSessionRoutes(app, sessions);
  registerReadRoutes(app, options, sessionOf, headers);
  registerActionRoutes(app, options, sessionOf);
}

function registerSessionRoutes(app: FastifyInstance, sessions: DashboardSessions): void {
  app.post('/dashboard/login', async (request, reply) => {
    if (!sameOrigin(request)) return refuse(reply, 403, 'cross-origin login refused');
    const token = (request.body as Record<string, unknown> | undefined)?.['token'];
    const session = typeof token === 'string' ? sessions.login(token) : null;
    if (session === null) return reply.redirect('/?login=failed', 303);
    reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`,
    );
    return reply.redirect('/', 303);
  });
  app.post('/dashboard/logout', async (request, reply) => {
    if (!sameOrigin(request)) return refuse(reply, 403, 'cross-origin logout refused');
    sessions.logout(cookieValue(request.headers.cookie, SESSION_COOKIE));
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return reply.redirect('/', 303);
  });
}

type SessionOf = (request: FastifyRequest) => Session | null;

/** What the page reads besides the overview: plans (anyone, like the overview) and logs (signed in). */
function registerReadRoutes(
  app: FastifyInstance,
  options: DashboardOptions,
  sessionOf: SessionOf,
  headers: Record<string, string>,
): void {
  app.get('/v1/overview', async (request, reply) =>
    sendText(
      request,
      reply,
      'application/json; charset=utf-8',
      JSON.stringify(await options.overview.read()),
    ),
  );
  app.get('/v1/dashboard/revisions/:revision/plan', async (request, reply) => {
    const { revision } = request.params as { revision: string };
    const plan = REVISION.test(revision) ? await options.overview.revisionPlan(revision) : null;
    if (plan === null) return refuse(reply, 404, `no plan is kept for revision ${revision}`);
    return { revision, ...plan };
  });
  let headPlan: { at: number; value: Promise<HeadPlan> } | null = null;
  app.get('/v1/dashboard/head-plan', async () => {
    if (headPlan === null || Date.now() - headPlan.at >= HEAD_PLAN_MAX_AGE_MS) {
      const value = options.overview.headPlan();
      headPlan = { at: Date.now(), value };
      // A failure is answered once, not kept for the next page.
      value.catch(() => (headPlan = null));
    }
    return headPlan.value;
  });
  app.get('/v1/dashboard/logs/:node/:replica', async (request, reply) => {
    if (sessionOf(request) === null) return refuse(reply, 401, 'sign in to the dashboard to read logs');
    const { node, replica } = request.params as { node: string; replica: string };
    const query = request.query as Record<string, string | undefined>;
    const tail = query['tail'] === undefined ? DEFAULT_DASHBOARD_LOG_TAIL : Number(query['tail']);
    if (!Number.isInteger(tail) || tail < 0 || tail > MAX_DASHBOARD_LOG_TAIL) {
      return refuse(reply, 400, `tail is a whole number from 0 to ${MAX_DASHBOARD_LOG_TAIL}`);
    }
    const lines = options.overview.replicaLogs(node, replica, { tail, follow: query['follow'] === '1' });
    if (lines === null) return refuse(reply, 404, `no node ${node}`);
    reply.hijack();
    const out = reply.raw;
    const gone = new AbortController();
    out.once('close', () => gone.abort());
    out.writeHead(200, {
      ...headers,
      'cache-control': NO_STORE,
      'content-type': `${NDJSON_CONTENT_TYPE}; charset=utf-8`,
    });
    await writeLogStream(out, lines, gone.signal);
    return reply;
  });
}

function registerActionRoutes(app: FastifyInstance, options: DashboardOptions, sessionOf: SessionOf): void {
  const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const session = sessionOf(request);
    if (session === null) return refuse(reply, 401, 'sign in to the dashboard first');
    if (!sameOrigin(request)) return refuse(reply, 403, 'the request does not come from this dashboard');
    const sent = request.headers['x-csrf-token'];
    if (!csrfMatches(session, typeof sent === 'string' ? sent : undefined)) {
      return refuse(reply, 403, 'missing or wrong CSRF token');
    }
  };
  app.post('/v1/dashboard/reconcile', { preHandler: guard }, async (_request, reply) => {
    void options.operator.trigger('dashboard');
    reply.code(202);
    return { accepted: true };
  });
  app.post('/v1/dashboard/revisions/:revision/retry', { preHandler: guard }, async (request, reply) => {
    const { revision } = request.params as { revision: string };
    if (!REVISION.test(revision) || !(await options.overview.retry(revision))) {
      return refuse(reply, 404, `revision ${revision} is not held as failed`);
    }
    void options.operator.trigger('dashboard retry');
    reply.code(202);
    return { revision, retrying: true };
  });
  app.post('/v1/dashboard/nodes/:name/:availability', { preHandler: guard }, async (request, reply) => {
    const { name, availability } = request.params as { name: string; availability: string };
    if (options.nodes === null) {
      return refuse(reply, 409, 'this operator holds no node registry (start it with --cluster-listen)');
    }
    if (availability !== 'drain' && availability !== 'active') {
      return refuse(reply, 404, 'a node is set to drain or active');
    }
    try {
      await options.nodes.setAvailability(name, availability);
    } catch (error) {
      if (error instanceof BerthError && error.code === 'ERR_BAD_REQUEST')
        return refuse(reply, 404, error.message);
      throw error;
    }
    return { node: name, availability };
  });
}

/** A full commit id (SHA-1 or SHA-256), as the state dir keys revisions. */
const REVISION = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * The browser says where a request comes from (Origin, sent with every POST): only this server's
 * own pages may act. Host is the address the browser used, so the two agree for the real page.
 */
function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  const host = request.headers.host;
  return origin !== undefined && host !== undefined && origin === `${request.protocol}://${host}`;
}

function refuse(reply: FastifyReply, code: number, message: string): FastifyReply {
  return reply.code(code).send({ error: message });
}
