/**
 * Step 1 of loading: bytes -> YAML documents, keeping every node's position so later steps can
 * point at `file:line:col`. Refuses what is not a small UTF-8 YAML file, and YAML that would expand
 * without bound (alias bombs), with a problem each; never throws for bad input.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, visit } from 'yaml';
import type { Document, Node, YAMLError } from 'yaml';
import { MAX_YAML_ALIAS_COUNT } from './defaults.js';
import type { FieldPath } from './field-path.js';
import type { ManifestProblem } from './types.js';

export interface Position {
  line: number;
  col: number;
}

export interface ParsedDocument {
  file: string;
  /** Where the document's content starts. */
  position: Position;
  /** The document as plain data; undefined when it could not be built. */
  value: unknown;
  /** The YAML had errors (reported already); the value is best effort, fit only to learn names. */
  hasYamlErrors: boolean;
  /** Position of the key (`at: 'key'`) or value at `path`; the nearest existing ancestor if absent. */
  locate(path: FieldPath, at: 'key' | 'value'): Position;
  /** The text a scalar at `path` was written as (`0444` for a value the YAML schema reads as 444). */
  scalarSource(path: FieldPath): string | undefined;
}

export interface ParsedFile {
  documents: ParsedDocument[];
  problems: ManifestProblem[];
}

/**
 * Deepest nesting of mappings and lists in a manifest (a Service nests some 6 levels): yaml composes
 * and converts documents recursively, so a file of 10,000 `[` would otherwise exhaust the stack.
 */
export const MAX_YAML_NESTING_DEPTH = 64;

export function parseManifestFile(
  file: { path: string; content: Uint8Array; size?: number; refused?: string },
  maxFileBytes: number,
): ParsedFile {
  const refuse = (message: string): ParsedFile => ({
    documents: [],
    problems: [{ file: file.path, line: 1, col: 1, message }],
  });
  const size = Math.max(file.size ?? 0, file.content.byteLength);
  if (size > maxFileBytes) {
    return refuse(`${size} bytes, over the ${formatByteCount(maxFileBytes)} limit of a manifest file`);
  }
  if (file.refused !== undefined) return refuse(file.refused);
  const depth = flowNestingDepth(file.content);
  if (depth > MAX_YAML_NESTING_DEPTH) {
    return refuse(`nested more than ${MAX_YAML_NESTING_DEPTH} levels deep ([ and { brackets); refused`);
  }
  if (file.content.includes(0)) {
    return refuse('not a text file (contains NUL bytes); manifests are UTF-8 YAML');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.content);
  } catch {
    return refuse('not valid UTF-8; manifests are UTF-8 YAML');
  }

  const lineCounter = new LineCounter();
  const positionOf = (offset: number): Position => lineCounter.linePos(offset);
  const documents: ParsedDocument[] = [];
  const problems: ManifestProblem[] = [];
  const yamlProblem = (error: YAMLError): ManifestProblem => {
    const { line, col } = positionOf(error.pos[0]);
    return { file: file.path, line, col, message: describeYamlError(error) };
  };

  // uniqueKeys compares each key with every earlier one (20,000 keys: seconds); duplicates are
  // found below with one Set per mapping instead.
  const parsed = parseAllDocuments(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  if ('empty' in parsed) {
    // An empty stream (only comments or nothing) can still carry errors, e.g. a stray directive.
    problems.push(...parsed.errors.map(yamlProblem));
    return { documents, problems };
  }
  for (const document of parsed) {
    const errors = [...document.errors, ...document.warnings];
    problems.push(...errors.map(yamlProblem));
    if (document.contents === null) continue;
    const structure = checkStructure(document);
    for (const { offset, message } of structure.problems) {
      const { line, col } = positionOf(offset);
      problems.push({ file: file.path, line, col, message });
    }
    if (structure.tooDeep) continue;
    const position = positionOf(document.contents.range?.[0] ?? 0);
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
    } catch (error) {
      const at = firstAliasOffset(document);
      const { line, col } = at === null ? position : positionOf(at);
      problems.push({ file: file.path, line, col, message: describeToJsError(error) });
      continue;
    }
    // `---` at the end of a file, or a document holding only `~`: nothing to load.
    if (value === null || value === undefined) continue;
    documents.push({
      file: file.path,
      position,
      value,
      hasYamlErrors: errors.length > 0 || structure.problems.length > 0,
      locate: (path, at) => {
        const offset = locateOffset(document, path, at);
        return offset === null ? position : positionOf(offset);
      },
      scalarSource: (path) => {
        const node = nodeAt(document, path);
        return isScalar(node) && node.range ? text.slice(node.range[0], node.range[1]) : undefined;
      },
    });
  }
  return { documents, problems: oneNestingProblem(problems) };
}

function describeYamlError(error: YAMLError): string {
  // yaml recurses once per level; a nesting the bracket pre-scan cannot see (`- - - - ...`) can
  // still exhaust the stack, which yaml reports as an error of its own.
  if (/Maximum call stack size exceeded/.test(error.message)) {
    return `nested more than ${MAX_YAML_NESTING_DEPTH} levels deep; refused`;
  }
  // yaml's messages may end with " at line L, column C:" and a code frame; the position is printed
  // separately, and a frame could show a secret's neighbouring lines.
  const headline = (error.message.split('\n')[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, '');
  return `invalid YAML: ${headline}`;
}

/** A nesting too deep overflows yaml at several places: one problem (the first) says it. */
function oneNestingProblem(problems: ManifestProblem[]): ManifestProblem[] {
  const nesting = problems.filter((problem) => problem.message.startsWith('nested more than'));
  if (nesting.length <= 1) return problems;
  const first = nesting.reduce((a, b) => (b.line < a.line || (b.line === a.line && b.col < a.col) ? b : a));
  return problems.filter((problem) => problem === first || !nesting.includes(problem));
}

function describeToJsError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RangeError && /Maximum call stack size exceeded/.test(message)) {
    return `nested more than ${MAX_YAML_NESTING_DEPTH} levels deep; refused`;
  }
  if (/alias count/i.test(message)) {
    return `YAML aliases expand too much (more than ${MAX_YAML_ALIAS_COUNT} alias expansions); refused as a possible "billion laughs" attack`;
  }
  return `invalid YAML: ${message}`;
}

function firstAliasOffset(document: Document.Parsed): number | null {
  let offset: number | null = null;
  visit(document, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? null;
      return visit.BREAK;
    },
  });
  return offset;
}

type Located = { key: Node | null; value: Node | null };

/** Walks `path` through maps and lists (following aliases) and returns the last key/value found. */
function walk(
  document: Document.Parsed,
  path: FieldPath,
): { found: Located; complete: boolean; trail: Located[] } {
  const trail: Located[] = [];
  let current: Located = { key: null, value: document.contents };
  for (const segment of path) {
    let node = current.value;
    if (isAlias(node)) node = node.resolve(document) ?? null;
    let next: Located | null = null;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (pair) next = { key: pair.key as Node, value: (pair.value as Node | null) ?? null };
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (item) next = { key: null, value: item };
    }
    if (next === null) return { found: current, complete: false, trail };
    trail.push(current);
    current = next;
  }
  return { found: current, complete: true, trail };
}

function nodeAt(document: Document.Parsed, path: FieldPath): Node | null {
  const { found, complete } = walk(document, path);
  return complete ? found.value : null;
}

function locateOffset(document: Document.Parsed, path: FieldPath, at: 'key' | 'value'): number | null {
  const { found, complete } = walk(document, path);
  const preferKey = at === 'key' || !complete;
  const node = preferKey ? (found.key ?? found.value) : (found.value ?? found.key);
  return node?.range?.[0] ?? null;
}

/**
 * Deepest `[`/`{` nesting outside quotes and comments, found in one pass before yaml recurses
 * into it. Block nesting needs one more column of indentation per level, so a file within the
 * size limit cannot nest blocks deep enough to matter; flow brackets need only one byte a level.
 */
function flowNestingDepth(content: Uint8Array): number {
  let depth = 0;
  let deepest = 0;
  let quote = 0;
  let comment = false;
  for (let index = 0; index < content.length; index++) {
    const byte = content[index];
    if (byte === 0x0a) {
      comment = false;
      continue;
    }
    if (comment) continue;
    if (quote !== 0) {
      if (byte === quote) quote = 0;
      else if (byte === 0x5c && quote === 0x22) index++;
      continue;
    }
    if (byte === 0x22 || byte === 0x27) quote = byte;
    else if (byte === 0x23 && (index === 0 || content[index - 1] === 0x20 || content[index - 1] === 0x09))
      comment = true;
    else if (byte === 0x5b || byte === 0x7b) deepest = Math.max(deepest, ++depth);
    else if ((byte === 0x5d || byte === 0x7d) && depth > 0) depth--;
  }
  return deepest;
}

/**
 * Duplicate keys and nesting depth of a composed document, in one walk with its own stack (no
 * recursion, so depth cannot overflow it): linear in the number of nodes.
 */
function checkStructure(document: Document.Parsed): {
  problems: { offset: number; message: string }[];
  tooDeep: boolean;
} {
  const problems: { offset: number; message: string }[] = [];
  const stack: { node: unknown; depth: number }[] = [{ node: document.contents, depth: 1 }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { node, depth } = next;
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth > MAX_YAML_NESTING_DEPTH) {
      const message = `nested more than ${MAX_YAML_NESTING_DEPTH} levels deep; refused`;
      return { problems: [{ offset: (node as Node).range?.[0] ?? 0, message }], tooDeep: true };
    }
    if (isSeq(node)) {
      for (const item of node.items) stack.push({ node: item, depth: depth + 1 });
      continue;
    }
    const seen = new Set<string>();
    for (const pair of node.items) {
      if (isScalar(pair.key)) {
        const key = String(pair.key.value);
        if (seen.has(key)) {
          problems.push({
            offset: pair.key.range?.[0] ?? 0,
            message: `duplicate key ${JSON.stringify(key)} (keys must be unique in a mapping)`,
          });
        }
        seen.add(key);
      }
      stack.push({ node: pair.value, depth: depth + 1 });
    }
  }
  return { problems, tooDeep: false };
}

export function formatByteCount(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
