/**
 * `berth plan --comment`: the Markdown plan as one pull-request comment, created or updated in
 * place. Which host, repository and pull request come from the flags, else from the CI job that
 * runs it (GitHub Actions and Gitea Actions: GITHUB_API_URL, GITHUB_REPOSITORY and the event
 * file; GitLab CI: CI_API_V4_URL, CI_PROJECT_PATH, CI_MERGE_REQUEST_IID), else from the --repo URL.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { BerthError } from '../core/errors.js';
import {
  checkRepoName,
  defaultApiUrl,
  FORGE_KINDS,
  repoFromUrl,
  type ForgeKind,
  type ForgeTarget,
} from '../forge/forge-target.js';
import { upsertPullRequestComment, type CommentResult } from '../forge/pull-request-comment.js';
import { PLAN_COMMENT_MARKER } from '../plan/render-plan.js';
import { parseRepoLocation } from '../source/remote-url.js';
import { addGitApiOptions, readGitApiToken, type GitApiOptions } from './commit-status-options.js';

export interface PlanCommentOptions extends GitApiOptions {
  comment?: boolean;
  pr?: string;
  gitHost?: ForgeKind;
}

export function addPlanCommentOptions(command: Command): void {
  command
    .option(
      '--comment',
      'also post the Markdown plan as one pull-request comment, updated in place on each run',
    )
    .option('--pr <number>', 'the pull or merge request to comment on (default: the one of the CI job)')
    .addOption(
      new Option(
        '--git-host <host>',
        'the git host to comment on (default: from the CI job or the --repo URL)',
      ).choices([...FORGE_KINDS]),
    );
  addGitApiOptions(command);
}

export async function postPlanComment(
  options: PlanCommentOptions & { repo: string },
  markdown: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ result: CommentResult; where: string }> {
  const remote = parseRepoLocation(options.repo);
  const remoteUrl = remote.kind === 'remote' ? remote.url : null;
  const kind = options.gitHost ?? hostOfJob(env) ?? (remoteUrl === null ? null : hostOfUrl(remoteUrl));
  if (kind === null) throw missing('the git host', '--git-host github|gitlab|gitea');
  const actions = env['GITHUB_ACTIONS'] === 'true' && kind !== 'gitlab';
  const jobApi = actions ? env['GITHUB_API_URL'] : kind === 'gitlab' ? env['CI_API_V4_URL'] : undefined;
  const jobRepo = actions ? env['GITHUB_REPOSITORY'] : kind === 'gitlab' ? env['CI_PROJECT_PATH'] : undefined;
  const apiUrl = options.gitApiUrl ?? jobApi ?? (remoteUrl === null ? null : defaultApiUrl(kind, remoteUrl));
  if (apiUrl === null || apiUrl === '') throw missing("the git host's API", '--git-api-url URL');
  const repo = options.gitApiRepo ?? jobRepo ?? (remoteUrl === null ? null : repoFromUrl(remoteUrl));
  if (repo === null || repo === '')
    throw missing('the repository on the git host', '--git-api-repo OWNER/NAME');
  const number = options.pr ?? (await pullRequestOfJob(kind, env));
  if (number === null)
    throw missing('the pull request (not a pull-request job of GitHub/Gitea Actions or GitLab CI)', '--pr N');
  if (!/^[1-9]\d{0,9}$/.test(number))
    throw new BerthError('ERR_BAD_REQUEST', `--pr "${number}" is not a pull request number`);
  const target: ForgeTarget = {
    kind,
    apiUrl: apiUrl.replace(/\/+$/, ''),
    repo: checkRepoName(kind, repo),
    token: await readGitApiToken(options.gitApiTokenFile, env),
  };
  const result = await upsertPullRequestComment(target, Number(number), markdown, PLAN_COMMENT_MARKER);
  return { result, where: `${kind} ${target.repo}${kind === 'gitlab' ? '!' : '#'}${number}` };
}

function missing(what: string, flag: string): BerthError {
  return new BerthError('ERR_BAD_REQUEST', `--comment cannot tell ${what}: give ${flag}`);
}

function hostOfJob(env: NodeJS.ProcessEnv): ForgeKind | null {
  if (env['GITEA_ACTIONS'] === 'true') return 'gitea';
  if (env['GITHUB_ACTIONS'] === 'true') return 'github';
  if (env['GITLAB_CI'] === 'true') return 'gitlab';
  return null;
}

function hostOfUrl(url: string): ForgeKind | null {
  const host = new URL(url).hostname;
  if (host === 'github.com') return 'github';
  if (host === 'gitlab.com') return 'gitlab';
  return null;
}

async function pullRequestOfJob(kind: ForgeKind, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (kind === 'gitlab') return env['CI_MERGE_REQUEST_IID'] ?? null;
  const eventPath = env['GITHUB_EVENT_PATH'];
  if (eventPath === undefined || eventPath === '') return null;
  let event: { pull_request?: { number?: unknown }; number?: unknown; issue?: { number?: unknown } };
  try {
    event = JSON.parse(await readFile(eventPath, 'utf8')) as typeof event;
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot read the CI event file GITHUB_EVENT_PATH: ${(error as Error).message}`,
    );
  }
  const number = event.pull_request?.number ?? event.issue?.number ?? event.number;
  return typeof number === 'number' ? String(number) : null;
}
