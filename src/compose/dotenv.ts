/**
 * The `.env` and `env_file` format as docker compose reads it: `KEY=VALUE` lines, an optional
 * `export ` prefix, `#` comments, single quotes taken literally, double quotes with `\n`-style
 * escapes, unquoted values cut at ` #`. Unquoted and double-quoted values interpolate the variables
 * defined above them (and the outer lookup), as compose does; a bare `KEY` takes the outer value.
 */
import { readFile } from 'node:fs/promises';
import { BerthError } from '../core/errors.js';
import { interpolate, type VariableLookup } from './interpolate.js';

export interface DotEnvLine {
  line: number;
  message: string;
}

export interface DotEnv {
  values: Map<string, string>;
  problems: DotEnvLine[];
}

const ASSIGNMENT = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(=(.*))?$/;

export function parseDotEnv(text: string, outer: VariableLookup): DotEnv {
  const values = new Map<string, string>();
  const problems: DotEnvLine[] = [];
  const lookup: VariableLookup = (name) => values.get(name) ?? outer(name);
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index] ?? '';
    if (raw.trim() === '' || raw.trim().startsWith('#')) continue;
    const match = ASSIGNMENT.exec(raw);
    if (match === null) {
      problems.push({ line: index + 1, message: `not a KEY=VALUE line` });
      continue;
    }
    const name = match[1] ?? '';
    if (match[2] === undefined) {
      const value = outer(name);
      if (value !== undefined) values.set(name, value);
      continue;
    }
    let rest = (match[3] ?? '').trimStart();
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may run over several lines, up to its closing quote.
      let end = closingQuote(rest, quote);
      while (end === -1 && index + 1 < lines.length) {
        rest += `\n${lines[++index] ?? ''}`;
        end = closingQuote(rest, quote);
      }
      if (end === -1) {
        problems.push({ line: index + 1, message: `${name}: unclosed ${quote} quote` });
        continue;
      }
      const body = rest.slice(1, end);
      if (quote === "'") {
        values.set(name, body);
        continue;
      }
      const expanded = interpolate(unescapeDoubleQuoted(body), lookup);
      if (!expanded.ok) problems.push({ line: index + 1, message: `${name}: ${expanded.error}` });
      else values.set(name, expanded.value);
      continue;
    }
    const unquoted = rest.replace(/\s+#.*$/, '').trimEnd();
    const expanded = interpolate(unquoted, lookup);
    if (!expanded.ok) problems.push({ line: index + 1, message: `${name}: ${expanded.error}` });
    else values.set(name, expanded.value);
  }
  return { values, problems };
}

function closingQuote(text: string, quote: string): number {
  for (let i = 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  return -1;
}

function unescapeDoubleQuoted(body: string): string {
  const escapes: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' };
  return body.replace(/\\(.)/g, (whole, char: string) => escapes[char] ?? whole);
}

/**
 * Reads env files in order, later ones winning; each may use the variables of the ones before it
 * and of `outer`. A missing file is an error when `required` (a file named with --env-file).
 */
export async function readEnvFiles(
  paths: readonly string[],
  outer: VariableLookup,
  required: boolean,
): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) continue;
      throw new BerthError('ERR_BAD_REQUEST', `cannot read ${path}: ${(error as Error).message}`);
    }
    const parsed = parseDotEnv(text, (name) => outer(name) ?? values.get(name));
    if (parsed.problems.length > 0) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        parsed.problems.map((problem) => `${path}:${problem.line}: ${problem.message}`).join('\n'),
      );
    }
    for (const [name, value] of parsed.values) values.set(name, value);
  }
  return values;
}
