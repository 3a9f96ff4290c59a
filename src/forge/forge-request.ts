/**
 * One call to a git host's REST API: JSON in, JSON out, a time limit, a bounded answer, and an
 * error that says whether trying again can help. The token goes in the header each host expects
 * and never into a message.
 */
import { BerthError } from '../core/errors.js';
import type { ForgeTarget } from './forge-target.js';

const TIMEOUT_MS = 10_000;
/** Answers are small JSON objects; anything bigger is cut (and its JSON then unread). */
const MAX_ANSWER_BYTES = 1024 * 1024;

export class ForgeError extends BerthError {
  constructor(
    message: string,
    /** 401/403: the token is wrong or lacks a scope; trying again will not help until it changes. */
    readonly unauthorized: boolean,
    /** A network error, a time-out, 429 or 5xx: worth trying again. */
    readonly transient: boolean,
    readonly status: number | null,
  ) {
    super('ERR_FORGE', message);
  }
}

function authHeaders(target: ForgeTarget): Record<string, string> {
  switch (target.kind) {
    case 'github':
      return { Authorization: `Bearer ${target.token}`, 'X-GitHub-Api-Version': '2022-11-28' };
    case 'gitlab':
      return { 'PRIVATE-TOKEN': target.token };
    case 'gitea':
      return { Authorization: `token ${target.token}` };
  }
}

export async function forgeRequest<T>(
  target: ForgeTarget,
  method: 'GET' | 'POST' | 'PATCH' | 'PUT',
  path: string,
  body?: unknown,
): Promise<T> {
  const url = `${target.apiUrl}${path}`;
  const what = `${method} ${url}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        Accept: 'application/json',
        'User-Agent': 'berth',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...authHeaders(target),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'error',
    });
  } catch (error) {
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : causeOf(error);
    throw new ForgeError(`${what}: ${reason}`, false, true, null);
  }
  const text = await boundedText(response);
  if (!response.ok) {
    const status = response.status;
    const unauthorized = status === 401 || status === 403;
    const transient = status === 429 || status >= 500;
    const hint = unauthorized ? ' (check the token and its scopes)' : '';
    throw new ForgeError(
      `${what}: ${status} ${response.statusText}${hint}: ${oneLine(text)}`,
      unauthorized,
      transient,
      status,
    );
  }
  if (text === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ForgeError(`${what}: the answer is not JSON`, false, true, response.status);
  }
}

async function boundedText(response: Response): Promise<string> {
  if (response.body === null) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    const buffer = Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > MAX_ANSWER_BYTES) break;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
