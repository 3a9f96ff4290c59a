/**
 * Commit statuses, as each git host takes them:
 *   GitHub  POST /repos/{owner}/{repo}/statuses/{sha}   {state, target_url, description, context}
 *   GitLab  POST /projects/{id}/statuses/{sha}          {state, target_url, description, name}
 *   Gitea   POST /repos/{owner}/{repo}/statuses/{sha}   {state, target_url, description, context}
 */
import { forgeRequest } from './forge-request.js';
import type { ForgeTarget } from './forge-target.js';

export type CommitState = 'pending' | 'success' | 'failure';

export interface CommitStatus {
  state: CommitState;
  /** `berth/<cluster>`: one status line per cluster on the commit. */
  context: string;
  description: string;
  targetUrl?: string;
}

/** GitHub refuses descriptions over 140 characters; the others take more, 140 reads fine everywhere. */
const MAX_DESCRIPTION = 140;

export async function postCommitStatus(
  target: ForgeTarget,
  sha: string,
  status: CommitStatus,
): Promise<void> {
  if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`not a commit id: ${sha}`);
  const description =
    status.description.length > MAX_DESCRIPTION
      ? `${status.description.slice(0, MAX_DESCRIPTION - 1)}…`
      : status.description;
  const url = status.targetUrl === undefined ? {} : { target_url: status.targetUrl };
  if (target.kind === 'gitlab') {
    const state = status.state === 'failure' ? 'failed' : status.state;
    const project = encodeURIComponent(target.repo);
    await forgeRequest(target, 'POST', `/projects/${project}/statuses/${sha}`, {
      state,
      name: status.context,
      description,
      ...url,
    });
    return;
  }
  const [owner, name] = target.repo.split('/').map(encodeURIComponent);
  await forgeRequest(target, 'POST', `/repos/${owner}/${name}/statuses/${sha}`, {
    state: status.state,
    context: status.context,
    description,
    ...url,
  });
}
