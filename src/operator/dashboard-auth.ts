import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../core/errors.js';

/** The dashboard's token, made at first start when no --dashboard-token-file is given. */
export const DASHBOARD_TOKEN_FILE = 'dashboard-token';
export const SESSION_COOKIE = 'berth_session';
/** A signed-in browser stays signed in this long (12 h), then logs in again. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Sessions held at once; past it the oldest is dropped (each login makes one). */
const MAX_SESSIONS = 64;
const MIN_TOKEN_CHARS = 16;

/**
 * The token a person types to sign in to the dashboard: from `--dashboard-token-file`, or made
 * once into `<state-dir>/dashboard-token` (0600) and kept there across restarts.
 */
export async function loadDashboardToken(
  stateDir: string,
  tokenFile: string | undefined,
): Promise<{ token: string; path: string; created: boolean }> {
  const path = tokenFile ?? join(stateDir, DASHBOARD_TOKEN_FILE);
  let text: string | null = null;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || tokenFile !== undefined) {
      throw new BerthError('ERR_BAD_REQUEST', `cannot read the dashboard token ${path}: ${String(error)}`);
    }
  }
  if (text !== null) {
    const token = text.trim();
    if (token.length < MIN_TOKEN_CHARS) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `the dashboard token in ${path} is shorter than ${MIN_TOKEN_CHARS} characters`,
      );
    }
    return { token, path, created: false };
  }
  const token = randomBytes(24).toString('base64url');
  // 'wx': two operators starting at once cannot overwrite each other's token.
  await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, path, created: true };
}

export interface Session {
  id: string;
  /** The synchronizer token every action of this session carries (header x-csrf-token). */
  csrf: string;
  expiresAt: number;
}

/** Signed-in browsers, in memory: a restarted operator signs everyone out. */
export class DashboardSessions {
  private readonly tokenDigest: Buffer;
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;

  constructor(token: string, now: () => number = Date.now) {
    this.tokenDigest = digest(token);
    this.now = now;
  }

  /** A new session when `token` is the dashboard token; null otherwise. */
  login(token: string): Session | null {
    // Digests of equal length: the comparison takes the same time whatever was typed.
    if (!timingSafeEqual(digest(token), this.tokenDigest)) return null;
    this.prune();
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      csrf: randomBytes(32).toString('base64url'),
      expiresAt: this.now() + SESSION_TTL_MS,
    };
    this.sessions.set(session.id, session);
    while (this.sessions.size > MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    return session;
  }

  find(id: string | undefined): Session | null {
    if (id === undefined) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    if (session.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return null;
    }
    return session;
  }

  logout(id: string | undefined): void {
    if (id !== undefined) this.sessions.delete(id);
  }

  private prune(): void {
    const now = this.now();
    for (const [id, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(id);
  }
}

/** Whether a CSRF token sent with an action is the session's own. */
export function csrfMatches(session: Session, sent: string | undefined): boolean {
  return sent !== undefined && timingSafeEqual(digest(sent), digest(session.csrf));
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const separator = part.indexOf('=');
    if (separator > 0 && part.slice(0, separator).trim() === name) return part.slice(separator + 1).trim();
  }
  return undefined;
}
