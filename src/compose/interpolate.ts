/**
 * Variable interpolation as docker compose does it (Compose Specification, "Interpolation"):
 * `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
 * `${VAR:?error}` / `${VAR?error}` (refuse), `${VAR:+alt}` / `${VAR+alt}` (substitute when set),
 * `$$` for a literal `$`. Defaults may themselves hold variables (`${A:-${B}}`).
 */

/** Looks a variable up; undefined when it is not set at all (an empty value is set). */
export type VariableLookup = (name: string) => string | undefined;

export type Interpolated = { ok: true; value: string; unset: string[] } | { ok: false; error: string };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

export function interpolate(text: string, lookup: VariableLookup): Interpolated {
  const unset: string[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar === -1) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
    } else if (next === '{') {
      const end = closingBrace(text, dollar + 2);
      if (end === -1) return { ok: false, error: `unclosed "\${" in ${JSON.stringify(text)}` };
      const expanded = expandBraced(text.slice(dollar + 2, end), lookup, unset);
      if (!expanded.ok) return expanded;
      out += expanded.value;
      i = end + 1;
    } else {
      const name = NAME.exec(text.slice(dollar + 1))?.[0];
      if (name === undefined) {
        // A lone `$` (before a digit, a space or the end) stays as written, as compose leaves it.
        out += '$';
        i = dollar + 1;
        continue;
      }
      const value = lookup(name);
      if (value === undefined) unset.push(name);
      out += value ?? '';
      i = dollar + 1 + name.length;
    }
  }
  return { ok: true, value: out, unset };
}

/** Index of the `}` closing a `${` whose content starts at `from`, counting nested `${...}`. */
function closingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '$') i++;
    else if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

function expandBraced(inner: string, lookup: VariableLookup, unset: string[]): Interpolated {
  const name = NAME.exec(inner)?.[0];
  if (name === undefined) return { ok: false, error: `invalid interpolation format "\${${inner}}"` };
  const rest = inner.slice(name.length);
  const value = lookup(name);
  if (rest === '') {
    if (value === undefined) unset.push(name);
    return { ok: true, value: value ?? '', unset };
  }
  const operator = /^(:?[-?+])/.exec(rest)?.[1];
  if (operator === undefined) return { ok: false, error: `invalid interpolation format "\${${inner}}"` };
  const emptyCounts = operator.startsWith(':');
  const missing = value === undefined || (emptyCounts && value === '');
  const argument = (): Interpolated => {
    const expanded = interpolate(rest.slice(operator.length), lookup);
    if (expanded.ok) unset.push(...expanded.unset);
    return expanded;
  };
  switch (operator.at(-1)) {
    case '-':
      return missing ? argument() : { ok: true, value: value ?? '', unset };
    case '+':
      return missing ? { ok: true, value: '', unset } : argument();
    default: {
      if (!missing) return { ok: true, value: value ?? '', unset };
      const message = argument();
      const why =
        message.ok && message.value !== '' ? message.value : emptyCounts ? 'is unset or empty' : 'is unset';
      return { ok: false, error: `required variable ${name} is missing a value: ${why}` };
    }
  }
}
