/**
 * Which agent route a request names: AGENT_ROUTES matched segment by segment, ":name" segments
 * captured and percent-decoded. HEAD asks for what GET answers, without the body.
 */
import type { AgentRoute } from './agent-routes.js';
import { HttpRefusal } from './http-refusal.js';

export interface RouteMatch {
  route: AgentRoute;
  params: Record<string, string>;
}

type Segment = { literal: string } | { param: string };

export interface AgentRouter {
  /** The route at `method` `path` (no query string), or undefined when there is none. */
  match(method: string, path: string): RouteMatch | undefined;
}

export function createAgentRouter(routes: readonly AgentRoute[]): AgentRouter {
  const compiled = routes.map((route) => ({ route, segments: segmentsOf(route.url) }));
  return {
    match(method, path) {
      const wanted = method === 'HEAD' ? 'GET' : method;
      const parts = path.split('/');
      for (const { route, segments } of compiled) {
        if (route.method !== wanted || segments.length !== parts.length) continue;
        const params = paramsIfMatching(segments, parts);
        if (params !== undefined) return { route, params };
      }
      return undefined;
    },
  };
}

function segmentsOf(url: string): Segment[] {
  return url.split('/').map((part) => (part.startsWith(':') ? { param: part.slice(1) } : { literal: part }));
}

function paramsIfMatching(
  segments: readonly Segment[],
  parts: readonly string[],
): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (const [index, segment] of segments.entries()) {
    const part = parts[index] ?? '';
    if ('literal' in segment) {
      if (part !== segment.literal) return undefined;
    } else {
      if (part === '') return undefined;
      params[segment.param] = decodeParam(part);
    }
  }
  return params;
}

function decodeParam(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpRefusal(400, {
      code: 'ERR_BAD_REQUEST',
      message: `bad request: '${part}' is not a valid url component`,
    });
  }
}
