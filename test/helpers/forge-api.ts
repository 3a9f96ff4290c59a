/**
 * A stand-in for the REST APIs of GitHub, GitLab and Gitea on loopback: it records every request
 * berth sends, checks the token header each host expects, and checks each body against the
 * host's request schema (GitHub's from its published OpenAPI description, see
 * test/fixtures/forge/; GitLab's and Gitea's as their API documentation gives them). A request
 * that does not match is answered 422 and recorded as invalid, so a test sees it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv, type ValidateFunction } from 'ajv';

export type ForgeKind = 'github' | 'gitlab' | 'gitea';

export interface ForgeRequest {
  method: string;
  path: string;
  body: unknown;
  /** Why the stand-in refused it (bad token, bad body, unknown route); null when accepted. */
  invalid: string | null;
}

export interface ForgeApi {
  url: string;
  requests: ForgeRequest[];
  /** Pull-request comments, by id: which pull request and the body. */
  comments: Map<number, { number: number; body: string }>;
  /** Statuses accepted, as `<sha prefix> <state> <context>`. */
  statuses(): string[];
  /** Answer the next `n` requests with 500. */
  failNext(n: number): void;
  close(): Promise<void>;
}

const github = JSON.parse(
  readFileSync(new URL('../fixtures/forge/github-openapi-subset.json', import.meta.url), 'utf8'),
) as { operations: Record<string, { requestBody: object }> };

const ajv = new Ajv({ strict: false, allErrors: true });
const statusSchemas: Record<ForgeKind, ValidateFunction> = {
  github: ajv.compile(github.operations['repos/create-commit-status']!.requestBody),
  gitlab: ajv.compile({
    type: 'object',
    required: ['state'],
    properties: {
      state: { enum: ['pending', 'running', 'success', 'failed', 'canceled', 'skipped'] },
      name: { type: 'string' },
      target_url: { type: 'string' },
      description: { type: 'string' },
    },
    additionalProperties: false,
  }),
  gitea: ajv.compile({
    type: 'object',
    required: ['state'],
    properties: {
      state: { enum: ['pending', 'success', 'error', 'failure', 'warning'] },
      context: { type: 'string' },
      target_url: { type: 'string' },
      description: { type: 'string' },
    },
    additionalProperties: false,
  }),
};

const commentBody = ajv.compile({
  type: 'object',
  required: ['body'],
  properties: { body: { type: 'string' } },
  additionalProperties: false,
});
const commentSchemas: Record<ForgeKind, { create: ValidateFunction; update: ValidateFunction }> = {
  github: {
    create: ajv.compile(github.operations['issues/create-comment']!.requestBody),
    update: ajv.compile(github.operations['issues/update-comment']!.requestBody),
  },
  gitlab: { create: commentBody, update: commentBody },
  gitea: { create: commentBody, update: commentBody },
};

/** `list`: the comments of pull request $1; `one`: comment $1 (GitLab: of merge request $1, note $2). */
const commentRoutes: Record<ForgeKind, { list: RegExp; one: RegExp; update: string }> = {
  github: {
    list: /^\/repos\/[^/]+\/[^/]+\/issues\/(\d+)\/comments$/,
    one: /^\/repos\/[^/]+\/[^/]+\/issues\/comments\/(\d+)$/,
    update: 'PATCH',
  },
  gitea: {
    list: /^\/repos\/[^/]+\/[^/]+\/issues\/(\d+)\/comments$/,
    one: /^\/repos\/[^/]+\/[^/]+\/issues\/comments\/(\d+)$/,
    update: 'PATCH',
  },
  gitlab: {
    list: /^\/projects\/[^/]+\/merge_requests\/(\d+)\/notes$/,
    one: /^\/projects\/[^/]+\/merge_requests\/\d+\/notes\/(\d+)$/,
    update: 'PUT',
  },
};

const statusRoutes: Record<ForgeKind, RegExp> = {
  github: /^\/repos\/[^/]+\/[^/]+\/statuses\/([0-9a-f]{40})$/,
  gitlab: /^\/projects\/[^/]+\/statuses\/([0-9a-f]{40})$/,
  gitea: /^\/repos\/[^/]+\/[^/]+\/statuses\/([0-9a-f]{40})$/,
};

function tokenOk(kind: ForgeKind, req: IncomingMessage, token: string): boolean {
  if (kind === 'github') return req.headers.authorization === `Bearer ${token}`;
  if (kind === 'gitlab') return req.headers['private-token'] === token;
  return req.headers.authorization === `token ${token}`;
}

export async function startForgeApi(kind: ForgeKind, token: string): Promise<ForgeApi> {
  const requests: ForgeRequest[] = [];
  const comments = new Map<number, { number: number; body: string }>();
  let nextId = 1000;
  let failing = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      let body: unknown = null;
      try {
        body = chunks.length === 0 ? null : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = '(not JSON)';
      }
      const record: ForgeRequest = { method: req.method ?? '', path, body, invalid: null };
      requests.push(record);
      if (failing > 0) {
        failing -= 1;
        record.invalid = 'answered 500 on purpose';
        return send(res, 500, { message: 'stand-in outage' });
      }
      if (!tokenOk(kind, req, token)) {
        record.invalid = 'bad token';
        return send(res, 401, { message: 'Bad credentials' });
      }
      const [route0, query = ''] = path.split('?') as [string, string?];
      const routes = commentRoutes[kind];
      const list = routes.list.exec(route0);
      if (list !== null && req.method === 'GET') {
        const params = new URLSearchParams(query);
        const size = Number(params.get(kind === 'gitea' ? 'limit' : 'per_page') ?? 30);
        const page = Number(params.get('page') ?? 1);
        const all = [...comments]
          .filter(([, c]) => c.number === Number(list[1]))
          .map(([id, c]) => ({ id, body: c.body }));
        return send(res, 200, all.slice((page - 1) * size, page * size));
      }
      const one = routes.one.exec(route0);
      const schema =
        list !== null && req.method === 'POST'
          ? commentSchemas[kind].create
          : one !== null && req.method === routes.update
            ? commentSchemas[kind].update
            : null;
      if (schema !== null) {
        if (!schema(body)) {
          record.invalid = ajv.errorsText(schema.errors);
          return send(res, 422, { message: record.invalid });
        }
        const text = (body as { body: string }).body;
        if (list !== null) {
          const id = nextId++;
          comments.set(id, { number: Number(list[1]), body: text });
          return send(res, 201, { id, body: text });
        }
        const existing = comments.get(Number(one![1]));
        if (existing === undefined) {
          record.invalid = 'no such comment';
          return send(res, 404, { message: 'Not Found' });
        }
        existing.body = text;
        return send(res, 200, { id: Number(one![1]), body: text });
      }
      const route = statusRoutes[kind].exec(path);
      if (req.method !== 'POST' || route === null) {
        record.invalid = 'no such route';
        return send(res, 404, { message: 'Not Found' });
      }
      const validate = statusSchemas[kind];
      if (!validate(body)) {
        record.invalid = ajv.errorsText(validate.errors);
        return send(res, 422, { message: record.invalid });
      }
      return send(res, 201, { id: requests.length, ...(body as object) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    comments,
    statuses: () =>
      requests
        .filter((r) => r.invalid === null && statusRoutes[kind].test(r.path))
        .map((r) => {
          const sha = statusRoutes[kind].exec(r.path)![1]!;
          const b = r.body as { state: string; context?: string; name?: string };
          return `${sha.slice(0, 7)} ${b.state} ${b.context ?? b.name ?? ''}`;
        }),
    failNext: (n) => {
      failing = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}
