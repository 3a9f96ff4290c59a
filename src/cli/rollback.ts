import { join } from 'node:path';
import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import type { HistoryEntry, OperatorState } from '../operator/state-store.js';
import { createRevertCommit, type RevertCommitResult } from '../source/revert-commit.js';
import { pushBranch, withBranchClone } from '../source/remote-revert.js';
import { credentialsFromEnv, parseRepoLocation, redactUrl } from '../source/remote-url.js';
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
      'make a revert commit on the tracked branch (a local repository, or an http(s) remote it is pushed to): by default back to the last good revision before the head; with REV, undo REV and everything after it',
    )
    .argument('[rev]', 'undo this commit and every later one: return the branch to the tree of its parent')
    .option('--to <rev>', 'return the branch to exactly the tree of this revision')
    .option(
      '--repo <repo>',
      'local repository or http(s) URL (default: the one last applied, from the state dir)',
    )
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
    const path = options.path ?? state.source?.path ?? '.';
    const branch = options.branch ?? state.source?.branch ?? DEFAULT_BRANCH;
    const history = await store.readHistory();

    const revertIn = (repoPath: string): Promise<RevertCommitResult> =>
      revertInRepository(repoPath, { rev, options, branch, path, state, history, log });

    const location = parseRepoLocation(absoluteRepo(repo));
    let result: RevertCommitResult;
    let pushedTo: string | null = null;
    if (location.kind === 'remote') {
      const credentials = location.credentials ?? credentialsFromEnv();
      result = await withBranchClone({ url: location.url, branch, credentials }, async (gitdir) => {
        const written = await revertIn(gitdir);
        if (written.commit !== null) await pushBranch({ gitdir, url: location.url, branch, credentials });
        return written;
      });
      if (result.commit !== null) pushedTo = redactUrl(location.url);
    } else {
      result = await revertIn(location.path);
    }

    printRollback(result, { format: options.format, branch, repo, pushedTo });
  });
  program.addCommand(command);
}

/** Chooses the target in a local repository and writes the revert commit there. */
async function revertInRepository(
  repoPath: string,
  args: {
    rev: string | undefined;
    options: RollbackOptions;
    branch: string;
    path: string;
    state: OperatorState;
    history: HistoryEntry[];
    log: Logger;
  },
): Promise<RevertCommitResult> {
  const { rev, options, branch, path, state, history, log } = args;
  const source = await openGitSource({
    repo: repoPath,
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
    const found = lastGoodBefore(head, state, history);
    if (found === null) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `${options.stateDir} knows no good revision before ${shortRevision(head)}; name one: \`berth rollback --to REV\`, or undo the head with \`berth rollback HEAD\``,
      );
    }
    target = found;
  }
  return createRevertCommit({ repo: repoPath, branch, target, path });
}

function printRollback(
  result: RevertCommitResult,
  args: { format: 'text' | 'json'; branch: string; repo: string; pushedTo: string | null },
): void {
  const { branch, repo, pushedTo } = args;
  if (args.format === 'json') {
    process.stdout.write(`${JSON.stringify({ ...result, pushedTo }, null, 2)}\n`);
    return;
  }
  if (result.commit === null) {
    process.stdout.write(
      `${branch} already has the tree of ${shortRevision(result.target)} (at ${shortRevision(result.previousHead)}): nothing to revert.\n`,
    );
    return;
  }
  const lines = [
    `Created ${shortRevision(result.commit)} on ${branch}: ${result.message.split('\n')[0] ?? ''}`,
    ...result.reverted.map((c) => `  reverts ${shortRevision(c.oid)} ${c.subject}`),
  ];
  if (pushedTo !== null) lines.push(`Pushed ${branch} to ${pushedTo}.`);
  if (result.checkoutUpdated)
    lines.push(`The checked-out files and the index of ${repo} were updated to it.`);
  lines.push(
    'The operator rolls it out through a normal rollout on its next reconcile (at once when it watches this repository).',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}
