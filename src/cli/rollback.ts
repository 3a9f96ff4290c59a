import { join } from 'node:path';
import { Command, Option } from 'commander';
import { BerthError } from '../errors.js';
import { createLogger } from '../log.js';
import type { HistoryEntry, OperatorState } from '../operator/state-store.js';
import { createRevertCommit } from '../source/revert-commit.js';
import { shortRevision } from '../source/revision.js';
import { openGitSource } from '../source/git-source.js';
import { absoluteRepo, DEFAULT_BRANCH, DEFAULT_STATE_DIR, openStateStore } from './context.js';

interface RollbackOptions {
  to?: string;
  repo?: string;
  path?: string;
  branch?: string;
  stateDir: string;
  format: 'text' | 'json';
}

/**
 * The default target: the last revision that was deployed successfully and is not the branch
 * head — the last good revision when the head is something else (a failed or not yet deployed
 * commit), else the newest earlier success in the history.
 */
export function lastGoodBefore(head: string, state: OperatorState, history: HistoryEntry[]): string | null {
  if (state.lastGood && state.lastGood.revision !== head) return state.lastGood.revision;
  for (let i = history.length - 1; i >= 0; i -= 1) {
    const entry = history[i]!;
    if (
      entry.outcome === 'succeeded' &&
      entry.revision !== head &&
      state.failed[entry.revision] === undefined
    )
      return entry.revision;
  }
  return null;
}

export function registerRollbackCommand(program: Command): void {
  const command = new Command('rollback')
    .description(
      'make a revert commit on the tracked branch of a local repository: by default back to the last good revision before the head; with REV, undo REV and everything after it',
    )
    .argument('[rev]', 'undo this commit and every later one: return the branch to the tree of its parent')
    .option('--to <rev>', 'return the branch to exactly the tree of this revision')
    .option('--repo <repo>', 'local repository (default: the one last applied, from the state dir)')
    .option('--path <path>', 'manifest sub-directory (default: as last applied)')
    .option('--branch <branch>', 'branch to revert on (default: as last applied, else main)')
    .option('--state-dir <dir>', 'operator state: history and last good revision', DEFAULT_STATE_DIR)
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'));
  command.action(async (rev: string | undefined, options: RollbackOptions) => {
    if (rev !== undefined && options.to !== undefined) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        'give either REV (undo it) or --to REV (return to it), not both',
      );
    }
    const log = createLogger({ level: process.env['BERTH_LOG_LEVEL'] ?? 'warn' });
    const store = openStateStore(options.stateDir);
    const state = await store.read();
    const repo = options.repo ?? state.source?.repo;
    if (repo === undefined) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `--repo is needed: ${options.stateDir} remembers no repository`,
      );
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(repo) && !repo.startsWith('file://')) {
      throw new BerthError(
        'ERR_NOT_SUPPORTED',
        `berth rollback writes to a local repository, and ${repo} is a remote: clone it, run \`berth rollback --repo <clone>\` there, then \`git push\``,
      );
    }
    const path = options.path ?? state.source?.path ?? '.';
    const branch = options.branch ?? state.source?.branch ?? DEFAULT_BRANCH;
    const source = await openGitSource({
      repo: absoluteRepo(repo),
      cacheDir: join(options.stateDir, 'git-cache'),
      log,
    });
    const head = await source.headOf(branch);

    let target: string;
    if (options.to !== undefined) {
      target = await source.resolveRef(options.to);
    } else if (rev !== undefined) {
      const undone = await source.resolveRef(rev);
      const parent = (await source.commitInfo(undone)).parents[0];
      if (parent === undefined) {
        throw new BerthError(
          'ERR_BAD_REQUEST',
          `${rev} is the first commit: there is nothing before it to return to`,
        );
      }
      target = parent;
    } else {
      const found = lastGoodBefore(head, state, await store.readHistory());
      if (found === null) {
        throw new BerthError(
          'ERR_BAD_REQUEST',
          `${options.stateDir} knows no good revision before ${shortRevision(head)}; name one: \`berth rollback --to REV\`, or undo the head with \`berth rollback HEAD\``,
        );
      }
      target = found;
    }

    const result = await createRevertCommit({ repo, branch, target, path });
    if (options.format === 'json') {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    if (result.commit === null) {
      process.stdout.write(
        `${branch} already has the tree of ${shortRevision(target)} (at ${shortRevision(head)}): nothing to revert.\n`,
      );
      return;
    }
    const lines = [
      `Created ${shortRevision(result.commit)} on ${branch}: ${result.message.split('\n')[0] ?? ''}`,
      ...result.reverted.map((c) => `  reverts ${shortRevision(c.oid)} ${c.subject}`),
    ];
    if (result.checkoutUpdated)
      lines.push(`The checked-out files and the index of ${repo} were updated to it.`);
    lines.push(
      'The operator rolls it out through a normal rollout on its next reconcile (at once when it watches this repository).',
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  });
  program.addCommand(command);
}
