/**
 * The small closed set of errors berth raises. Every error says what happens next:
 * - terminal: needs a change by the user (a manifest, a token); retrying will not help.
 * - waiting: a condition that is expected to clear; retry after `retryAfterMs`.
 * - transient: a passing fault (network, engine busy); back off and retry.
 * Errors cross the agent wire as `{ code, message, data }` and are rebuilt with `errorFromWire`.
 */
export type ErrorCode =
  | 'ERR_MANIFEST_INVALID'
  | 'ERR_GIT_SOURCE'
  | 'ERR_GIT_REF_NOT_FOUND'
  | 'ERR_AGENT_UNREACHABLE'
  | 'ERR_AGENT_UNAUTHORIZED'
  | 'ERR_DOCKER_UNAVAILABLE'
  | 'ERR_IMAGE_NOT_FOUND'
  | 'ERR_CONTAINER_NOT_FOUND'
  | 'ERR_ROLLOUT_UNHEALTHY'
  | 'ERR_ROLLOUT_DEADLINE'
  | 'ERR_JOB_FAILED'
  | 'ERR_NOT_SUPPORTED'
  | 'ERR_SECRET_UNREADABLE'
  | 'ERR_BAD_REQUEST'
  | 'ERR_STATE'
  | 'ERR_STATE_WRITE'
  | 'ERR_FORGE'
  | 'ERR_INTERNAL';

export type ErrorDisposition = 'terminal' | 'waiting' | 'transient';

const dispositions: Record<ErrorCode, ErrorDisposition> = {
  ERR_MANIFEST_INVALID: 'terminal',
  ERR_GIT_SOURCE: 'transient',
  ERR_GIT_REF_NOT_FOUND: 'terminal',
  ERR_AGENT_UNREACHABLE: 'transient',
  ERR_AGENT_UNAUTHORIZED: 'terminal',
  ERR_DOCKER_UNAVAILABLE: 'transient',
  ERR_IMAGE_NOT_FOUND: 'terminal',
  ERR_CONTAINER_NOT_FOUND: 'waiting',
  ERR_ROLLOUT_UNHEALTHY: 'terminal',
  ERR_ROLLOUT_DEADLINE: 'terminal',
  // A Job a Service depends on failed at this revision: a new commit has to fix it.
  ERR_JOB_FAILED: 'terminal',
  ERR_NOT_SUPPORTED: 'terminal',
  ERR_SECRET_UNREADABLE: 'terminal',
  ERR_BAD_REQUEST: 'terminal',
  ERR_STATE: 'terminal',
  // A full disk or a read-only remount clears without a new commit: retry with back-off.
  ERR_STATE_WRITE: 'transient',
  // A git host's API (commit statuses, comments): never in the way of a rollout.
  ERR_FORGE: 'transient',
  ERR_INTERNAL: 'transient',
};

const httpStatuses: Record<ErrorCode, number> = {
  ERR_MANIFEST_INVALID: 422,
  ERR_GIT_SOURCE: 502,
  ERR_GIT_REF_NOT_FOUND: 404,
  ERR_AGENT_UNREACHABLE: 503,
  ERR_AGENT_UNAUTHORIZED: 401,
  ERR_DOCKER_UNAVAILABLE: 503,
  ERR_IMAGE_NOT_FOUND: 404,
  ERR_CONTAINER_NOT_FOUND: 404,
  ERR_ROLLOUT_UNHEALTHY: 409,
  ERR_ROLLOUT_DEADLINE: 409,
  ERR_JOB_FAILED: 409,
  ERR_NOT_SUPPORTED: 422,
  ERR_SECRET_UNREADABLE: 422,
  ERR_BAD_REQUEST: 400,
  ERR_STATE: 500,
  ERR_STATE_WRITE: 507,
  ERR_FORGE: 502,
  ERR_INTERNAL: 500,
};

export interface WireError {
  code: ErrorCode;
  message: string;
  data?: unknown;
}

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly data: unknown;
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { data?: unknown; cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BerthError';
    this.code = code;
    this.data = options.data;
    this.retryAfterMs = options.retryAfterMs;
  }

  get disposition(): ErrorDisposition {
    return dispositions[this.code];
  }

  get httpStatus(): number {
    return httpStatuses[this.code];
  }

  toWire(): WireError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && value in dispositions;
}

/** Rebuilds an error received over the wire; an unknown shape becomes ERR_INTERNAL. */
export function errorFromWire(body: unknown, fallbackMessage: string): BerthError {
  if (body !== null && typeof body === 'object') {
    const { code, message, data } = body as Record<string, unknown>;
    if (isErrorCode(code) && typeof message === 'string') {
      return new BerthError(code, message, data === undefined ? {} : { data });
    }
  }
  return new BerthError('ERR_INTERNAL', fallbackMessage);
}

/** Any thrown value as a BerthError, keeping the original as the cause. */
export function asBerthError(error: unknown): BerthError {
  if (error instanceof BerthError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BerthError('ERR_INTERNAL', message, { cause: error });
}
