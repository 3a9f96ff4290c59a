/**
 * One POST of a notification: JSON body, a time limit, redirects not followed (a webhook URL that
 * redirects is wrong, and following it would carry the body somewhere the Secret did not name),
 * the answer read but bounded. A failure says whether trying again can help and never contains
 * the URL: a webhook URL is its own credential (Slack's and Discord's carry the token in the path).
 */
const TIMEOUT_MS = 10_000;
const MAX_ANSWER_BYTES = 64 * 1024;
/** A 429's Retry-After is honoured up to this; longer, the back-off of the caller decides. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

export class DeliveryError extends Error {
  constructor(
    message: string,
    /** A network error, a time-out, 429 or 5xx: worth trying again. */
    readonly transient: boolean,
    /** What a 429 or 503 asked for (Retry-After), when it did. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/** Refuses anything but http(s) before any request; says nothing of the URL but its scheme. */
export function parseNotifierUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new DeliveryError('the URL in the Secret is not a URL', false);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new DeliveryError(`the URL in the Secret is ${url.protocol} , not http(s)`, false);
  return url;
}

export async function postNotification(url: URL, body: unknown): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': 'berth' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'manual',
    });
  } catch (error) {
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : causeOf(error);
    throw new DeliveryError(`POST to ${url.host}: ${reason}`, true);
  }
  await drain(response);
  if (response.status >= 200 && response.status < 300) return;
  const { status } = response;
  const transient = status === 429 || status >= 500;
  const redirect = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
  throw new DeliveryError(
    `POST to ${url.host}: ${status} ${response.statusText}${redirect}`,
    transient,
    transient ? retryAfter(response.headers.get('retry-after')) : null,
  );
}

/** Reads the answer to its end (bounded) so the connection can be reused, and drops it. */
async function drain(response: Response): Promise<void> {
  if (response.body === null) return;
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += (chunk as Uint8Array).length;
      if (size > MAX_ANSWER_BYTES) break;
    }
  } catch {
    // The status is what counts; a body cut short says nothing more.
  }
}

function retryAfter(header: string | null): number | null {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Math.min(Number(header.trim()) * 1000, MAX_RETRY_AFTER_MS);
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  // Only the code: a cause's message can quote the URL it failed on.
  return cause?.code ?? (error instanceof Error ? error.name : 'request failed');
}
