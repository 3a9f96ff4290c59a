import { OffThreadManifestLoader } from '../manifests/load-off-thread.js';
import type { LoadResult } from '../manifests/types.js';
import type { GitSource } from '../source/git-source.js';
import type { RevisionSource } from './revision-source.js';

/**
 * Manifests at a revision of a git repository, under an optional sub-path. Loading is cached
 * per revision: a commit never changes, and an idle operator re-reads the same head every tick.
 */
export function createGitRevisionSource(args: {
  git: GitSource;
  repo: string;
  branch: string;
  path: string;
}): RevisionSource {
  const cache = new Map<string, LoadResult>();
  // Parsing a large revision takes seconds of CPU: on a worker, heartbeats and the API go on.
  const loader = new OffThreadManifestLoader();
  return {
    description: `${args.repo}${args.path && args.path !== '.' ? ` (${args.path})` : ''} @ ${args.branch}`,
    branch: args.branch,
    head: () => args.git.headOf(args.branch),
    resolve: (ref) => args.git.resolveRef(ref),
    async load(revision) {
      const cached = cache.get(revision);
      if (cached) return cached;
      loader.warm();
      const files = await args.git.readFiles(revision, args.path);
      const result = await loader.load(files, { revision });
      if (cache.size > 16) cache.delete(cache.keys().next().value!);
      cache.set(revision, result);
      return result;
    },
    async commitInfo(revision) {
      const info = await args.git.commitInfo(revision);
      return {
        author: `${info.author.name} <${info.author.email}>`,
        message: info.message,
        timestamp: info.author.timestamp,
      };
    },
  };
}
