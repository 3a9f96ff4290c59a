/**
 * Git's ancestry suffixes on a revision, as `git rev-parse` reads them: `HEAD~1`, `main^`,
 * `v1.2~3^2`. `~N` follows the first parent N times (`~` alone is `~1`); `^N` takes the N-th
 * parent (`^` alone is `^1`, `^0` is the commit itself). Git forbids `~` and `^` in ref names, so
 * the split between the name and its suffixes is never ambiguous.
 */
import { refNotFound } from './source-errors.js';
import { shortRevision } from './revision.js';

export interface AncestryStep {
  op: '~' | '^';
  n: number;
}

export interface RevisionExpression {
  /** What the suffixes apply to: a branch, tag, commit id or HEAD. */
  base: string;
  steps: AncestryStep[];
}

const WITH_SUFFIXES = /^([^~^]+)((?:[~^]\d*)+)$/;
const STEP = /([~^])(\d*)/g;
/** More ancestry steps than anyone types; keeps `HEAD~99999999` from walking a huge history. */
const MAX_GENERATIONS = 10_000;

/** The expression's parts, or null when `text` has no ancestry suffix (a plain name or id). */
export function parseRevisionExpression(text: string): RevisionExpression | null {
  const match = WITH_SUFFIXES.exec(text);
  if (match === null) return null;
  const steps = [...match[2]!.matchAll(STEP)].map(([, op, digits]) => ({
    op: op as '~' | '^',
    n: digits === '' ? 1 : Number(digits),
  }));
  return { base: match[1]!, steps };
}

/**
 * The commit that `steps` lead to from `start`. `parentsOf` gives a commit's parents (and makes
 * them readable, for a shallow cache). Errors name the expression and what was missing.
 */
export async function walkAncestry(
  start: string,
  expression: { text: string; repo: string; steps: AncestryStep[] },
  parentsOf: (commit: string) => Promise<string[]>,
): Promise<string> {
  const generations = expression.steps.reduce((sum, s) => sum + (s.op === '~' ? s.n : 1), 0);
  if (generations > MAX_GENERATIONS)
    throw refNotFound(expression.text, expression.repo, `goes back more than ${MAX_GENERATIONS} commits`);
  let commit = start;
  for (const step of expression.steps) {
    const hops = step.op === '~' ? Array.from({ length: step.n }, () => 1) : step.n === 0 ? [] : [step.n];
    for (const which of hops) {
      const parents = await parentsOf(commit);
      const parent = parents[which - 1];
      if (parent === undefined) {
        const has =
          parents.length === 0
            ? 'no parent'
            : `only ${parents.length} parent${parents.length === 1 ? '' : 's'}`;
        throw refNotFound(expression.text, expression.repo, `commit ${shortRevision(commit)} has ${has}`);
      }
      commit = parent;
    }
  }
  return commit;
}
