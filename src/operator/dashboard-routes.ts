import { readFile } from 'node:fs/promises';
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
import { dashboardPage } from './dashboard-page.js';
import type { Operator } from './operator.js';
import type { NodeControl, OverviewSource } from './overview.js';

/** The client's files: plain JavaScript and CSS beside the package, found from src/ and from dist/. */
const ASSETS = new URL('../../assets/dashboard/', import.meta.url);

const SECURITY_HEADERS: Record<string, string> = {
  // No inline script or style, nothing from elsewhere: everything the page runs is served here.
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: under it a browser sends `Origin: null` with a form, and the login checks Origin.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export interface DashboardOptions {
  operator: Pick<Operator, 'trigger'>;
  overview: Pick<OverviewSource, 'read'>;
  /** null without --cluster-listen: nodes are shown but cannot be drained from the page. */
  nodes: NodeControl | null;
  token: string;
}

/**
 * The web dashboard of `berth run --listen`: the page at `/`, its JSON at `GET /v1/overview`
 * (read-only, like /healthz), and actions for a signed-in browser. An action needs the session
 * cookie (else 401), the session's CSRF token in `x-csrf-token` and an Origin of this server
 * (else 403).
 */
export async function dashboardRoutes(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const sessions = new DashboardSessions(options.token);
  const [script, style] = await Promise.all([
    readFile(new URL('app.js', ASSETS), 'utf8'),
    readFile(new URL('style.css', ASSETS), 'utf8'),
  ]);
  app.addHook('onSend', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
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
    reply.type('text/html; charset=utf-8');
    return dashboardPage({
      overview: await options.overview.read(),
      csrf: session?.csrf ?? null,
      loginFailed: query['login'] === 'failed',
    });
  });
  app.get('/dashboard/app.js', async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(script),
  );
  app.get('/dashboard/style.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').send(style),
  );
  // Browsers ask for it; there is none (and a 404 would show as an error in the console).
  app.get('/favicon.ico', async (_request, reply) => reply.code(204).send());
  app.get('/v1/overview', async () => options.overview.read());

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
