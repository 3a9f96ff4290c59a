/**
 * One pull-request comment, kept up to date: the comment whose body holds `marker` is edited in
 * place, or created when there is none, so a pull request that is pushed to ten times still has
 * one plan comment (as Flux 2.8 and Atlantis do). On the three hosts:
 *
 *   GitHub  GET/POST /repos/{o}/{r}/issues/{n}/comments        PATCH /repos/{o}/{r}/issues/comments/{id}
 *   GitLab  GET/POST /projects/{id}/merge_requests/{iid}/notes PUT   /projects/{id}/merge_requests/{iid}/notes/{id}
 *   Gitea   GET/POST /repos/{o}/{r}/issues/{n}/comments        PATCH /repos/{o}/{r}/issues/comments/{id}
 */
import { forgeRequest } from './forge-request.js';
import type { ForgeTarget } from './forge-target.js';

/** GitHub refuses comments over 65,536 characters; the plan is cut well before that. */
export const MAX_COMMENT_CHARS = 60_000;
const PER_PAGE = 100;
/** Comments looked through for the marker: a pull request with more is not worth a longer search. */
const MAX_PAGES = 20;

interface Comment {
  id: number;
  body?: string | null;
}

export interface CommentResult {
  action: 'created' | 'updated';
  id: number;
}

export async function upsertPullRequestComment(
  target: ForgeTarget,
  number: number,
  body: string,
  marker: string,
): Promise<CommentResult> {
  const text =
    body.length > MAX_COMMENT_CHARS
      ? `${body.slice(0, MAX_COMMENT_CHARS)}\n\n… (cut: the plan is longer than a comment may be)\n`
      : body;
  const paths = commentPaths(target, number);
  const existing = await findComment(target, paths.list, marker);
  if (existing === null) {
    const created = await forgeRequest<Comment>(target, 'POST', paths.list, { body: text });
    return { action: 'created', id: created.id };
  }
  await forgeRequest<Comment>(target, target.kind === 'gitlab' ? 'PUT' : 'PATCH', paths.one(existing.id), {
    body: text,
  });
  return { action: 'updated', id: existing.id };
}

function commentPaths(target: ForgeTarget, number: number): { list: string; one: (id: number) => string } {
  if (target.kind === 'gitlab') {
    const base = `/projects/${encodeURIComponent(target.repo)}/merge_requests/${number}/notes`;
    return { list: base, one: (id) => `${base}/${id}` };
  }
  const [owner, name] = target.repo.split('/').map(encodeURIComponent);
  const repo = `/repos/${owner}/${name}`;
  return { list: `${repo}/issues/${number}/comments`, one: (id) => `${repo}/issues/comments/${id}` };
}

async function findComment(target: ForgeTarget, list: string, marker: string): Promise<Comment | null> {
  const size = target.kind === 'gitea' ? 'limit' : 'per_page';
  for (let page = 1; page <= MAX_PAGES; page++) {
    const comments = await forgeRequest<Comment[]>(target, 'GET', `${list}?${size}=${PER_PAGE}&page=${page}`);
    if (!Array.isArray(comments)) return null;
    const found = comments.find((c) => typeof c.body === 'string' && c.body.includes(marker));
    if (found !== undefined) return found;
    if (comments.length < PER_PAGE) return null;
  }
  return null;
}
