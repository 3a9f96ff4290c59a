import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import {
  checkRepoName,
  defaultApiUrl,
  FORGE_KINDS,
  repoFromUrl,
  type ForgeKind,
  type ForgeTarget,
} from '../forge/forge-target.js';
import { CommitStatusReporter } from '../operator/commit-status-reporter.js';
import { parseRepoLocation } from '../source/remote-url.js';

/** Where the git host's API is and who berth is there (commit statuses, plan comments). */
export interface GitApiOptions {
  gitApiUrl?: string;
  gitApiRepo?: string;
  gitApiTokenFile?: string;
}

export interface CommitStatusOptions extends GitApiOptions {
  commitStatus?: ForgeKind;
  clusterName: string;
  statusUrl?: string;
}

/** The git host's API: its root, the repository there, and a token from a file or the environment only. */
export function addGitApiOptions(command: Command): void {
  command
    .option('--git-api-url <url>', "the git host's API root (default: the public API of the --repo host)")
    .option('--git-api-repo <owner/name>', 'the repository on the git host (default: from the --repo URL)')
    .option('--git-api-token-file <file>', "file holding the git host's API token (or BERTH_GIT_API_TOKEN)");
}

/** The flags of commit statuses (`berth run`). */
export function addCommitStatusOptions(command: Command): void {
  command.addOption(
    new Option(
      '--commit-status <host>',
      'report each deployed revision as a commit status on the git host (pending, success, failure)',
    ).choices([...FORGE_KINDS]),
  );
  addGitApiOptions(command);
  command
    .option('--cluster-name <name>', 'names this cluster in commit statuses: context berth/NAME', 'default')
    .option('--status-url <url>', 'the link of each commit status (e.g. the dashboard)');
}

export async function openCommitStatusReporter(
  options: CommitStatusOptions & { repo: string },
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CommitStatusReporter | null> {
  const kind = options.commitStatus;
  if (kind === undefined) {
    const stray = options.gitApiUrl ?? options.gitApiRepo ?? options.gitApiTokenFile;
    if (stray !== undefined)
      throw new BerthError('ERR_BAD_REQUEST', '--git-api-* options need --commit-status github|gitlab|gitea');
    return null;
  }
  if (!/^[\w.-]{1,63}$/.test(options.clusterName))
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--cluster-name "${options.clusterName}": letters, digits, ".", "_" and "-" only`,
    );
  const location = parseRepoLocation(options.repo);
  const remoteUrl = location.kind === 'remote' ? location.url : null;
  const need = (what: string): never => {
    throw new BerthError('ERR_BAD_REQUEST', `--commit-status with a local --repo needs ${what}`);
  };
  const target: ForgeTarget = {
    kind,
    apiUrl: (
      options.gitApiUrl ?? (remoteUrl === null ? need('--git-api-url') : defaultApiUrl(kind, remoteUrl))
    ).replace(/\/+$/, ''),
    repo: checkRepoName(
      kind,
      options.gitApiRepo ?? (remoteUrl === null ? need('--git-api-repo') : repoFromUrl(remoteUrl)),
    ),
    token: await readGitApiToken(options.gitApiTokenFile, env),
  };
  if (!/^https?:\/\//.test(target.apiUrl))
    throw new BerthError('ERR_BAD_REQUEST', '--git-api-url is not an http(s) URL');
  log.info({ host: kind, api: target.apiUrl, repo: target.repo }, 'reporting commit statuses');
  return new CommitStatusReporter({
    target,
    context: `berth/${options.clusterName}`,
    ...(options.statusUrl === undefined ? {} : { targetUrl: options.statusUrl }),
    log,
  });
}

export async function readGitApiToken(file: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (error) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `cannot read --git-api-token-file ${file}: ${(error as Error).message}`,
      );
    }
  } else {
    token = env['BERTH_GIT_API_TOKEN']?.trim();
  }
  if (token === undefined || token === '')
    throw new BerthError(
      'ERR_BAD_REQUEST',
      '--commit-status needs a token: BERTH_GIT_API_TOKEN or --git-api-token-file',
    );
  if (/[\r\n]/.test(token)) throw new BerthError('ERR_BAD_REQUEST', 'the git API token holds a line break');
  return token;
}
