/**
 * The one place that takes a credential out of a URL (`https://user:token@host/x.git`) and the
 * process-wide list of credentials known so far, so that any text about to leave the process (a
 * log line, an error message, a state file) can be cleaned of them.
 *
 * A credential stays in memory only: the credential-free form of a URL is what is stored, logged,
 * printed and hashed into names; the credential itself goes into an Authorization header.
 */

export interface UrlCredential {
  username: string;
  password: string;
}

const CENSOR = '[redacted]';

/**
 * Secrets shorter than this are not scrubbed from arbitrary text: a 3-letter password would
 * censor every word that contains it. They are still kept out by construction (the URL's
 * credential-free form is the only one ever written).
 */
const MIN_SCRUBBED_LENGTH = 6;

/** Every form in which a known credential could show up in text, longest first. */
const knownSecrets = new Set<string>();
let scrubOrder: string[] = [];

/** `scheme://userinfo@` anywhere in a text: a credential written into a URL. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"`<>]*@/gi;

/**
 * Splits an http(s) URL into its credential-free form and the credential written into it (the
 * credential is also remembered, see redactCredentials). Anything that is not an http(s) URL is
 * returned unchanged.
 */
export function splitUrlCredential(url: string): { url: string; credential: UrlCredential | undefined } {
  if (!/^https?:\/\//i.test(url)) return { url, credential: undefined };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url: withoutUrlUserinfo(url), credential: undefined };
  }
  if (parsed.username === '' && parsed.password === '')
    return { url: parsed.toString(), credential: undefined };
  const credential = {
    username: safeDecode(parsed.username),
    password: safeDecode(parsed.password),
  };
  rememberCredential(credential);
  // Also the forms as written: a percent-encoded password is a different string in text.
  rememberSecret(parsed.password);
  rememberSecret(`${parsed.username}:${parsed.password}`);
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.toString(), credential };
}

/** The credential-free form of `url` (see splitUrlCredential). */
export function withoutCredential(url: string): string {
  return splitUrlCredential(url).url;
}

/**
 * Remembers a credential from elsewhere (environment, file), so that redactCredentials removes
 * it: the password as it is, URL-encoded, and the `user:password` pair as it is and in base64
 * (the HTTP Basic Authorization header).
 */
export function rememberCredential(credential: UrlCredential): void {
  const { username, password } = credential;
  rememberSecret(password);
  rememberSecret(encodeURIComponent(password));
  rememberSecret(`${username}:${password}`);
  rememberSecret(Buffer.from(`${username}:${password}`, 'utf8').toString('base64'));
  rememberSecret(Buffer.from(password, 'utf8').toString('base64'));
}

function rememberSecret(secret: string): void {
  if (secret.length < MIN_SCRUBBED_LENGTH || knownSecrets.has(secret)) return;
  knownSecrets.add(secret);
  scrubOrder = [...knownSecrets].sort((a, b) => b.length - a.length);
}

/**
 * `text` without any credential: URL userinfo (`scheme://user:pw@` → `scheme://`) and every
 * remembered credential replaced by `[redacted]`. A second line of defence for text produced by
 * code berth does not control (isomorphic-git, node errors) and for anything written out.
 */
export function redactCredentials(text: string): string {
  let result = withoutUrlUserinfo(text);
  for (const secret of scrubOrder) {
    if (result.includes(secret)) result = result.split(secret).join(CENSOR);
  }
  return result;
}

function withoutUrlUserinfo(text: string): string {
  return text.replace(URL_USERINFO, '$1');
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
