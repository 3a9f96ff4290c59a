/**
 * Loading a compose project as docker compose does: the files in order (later ones override
 * earlier ones), each with its `include:` and `extends:` resolved; `.env` next to the first file
 * (or the --env-file files instead) with the process environment winning over it; every string
 * interpolated, YAML merge keys (`<<: *defaults`) applied; and the project name (-p,
 * COMPOSE_PROJECT_NAME, top-level `name:`, else the directory). Each value keeps the file and
 * line it came from, so every message can say `file:line`.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { BerthError } from '../core/errors.js';
import type { FieldPath } from '../manifests/field-path.js';
import { loadResolvedFile } from './compose-include.js';
import { existingDepth, mergeCompose, type LoadedFile, type LoadProblems } from './compose-model.js';
import { readEnvFiles } from './dotenv.js';
import type { VariableLookup } from './interpolate.js';

export { isRecord, keyValueMap } from './compose-model.js';

export interface ComposeLocation {
  file: string;
  line: number;
}

export interface ComposeProject {
  name: string;
  /** The project directory: that of the first file; relative paths in any file resolve from it. */
  dir: string;
  model: Record<string, unknown>;
  /** Variables of the process and the `.env` file, the process winning. */
  lookup: VariableLookup;
  locate(path: FieldPath): ComposeLocation;
  /** The text a scalar was written as (`0440`, which YAML 1.2 reads as decimal 440). */
  scalarSource(path: FieldPath): string | undefined;
  /** Variables used but set nowhere: compose substitutes "" and warns, so do we. */
  unsetVariables: { name: string; path: FieldPath }[];
}

export interface ComposeLoadOptions {
  /** `--env-file`: read instead of `.env`, in order, later ones winning (the process still wins). */
  envFiles?: readonly string[];
  /** `-p`: the project name, over COMPOSE_PROJECT_NAME and `name:`. */
  projectName?: string;
}

export async function loadComposeProject(
  files: readonly string[],
  env: NodeJS.ProcessEnv,
  options: ComposeLoadOptions = {},
): Promise<ComposeProject> {
  if (files.length === 0) throw new BerthError('ERR_BAD_REQUEST', 'no compose file given');
  if (
    options.projectName !== undefined &&
    normaliseProjectName(options.projectName) !== options.projectName
  ) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `-p ${options.projectName}: a project name is lowercase letters, digits, _ and -, starting with a letter or digit`,
    );
  }
  const dir = dirname(resolve(files[0] ?? '.'));
  const given = options.envFiles !== undefined && options.envFiles.length > 0;
  const envFiles = given ? options.envFiles!.map((file) => resolve(file)) : [join(dir, '.env')];
  const dotEnv = await readEnvFiles(envFiles, (name) => env[name], given);
  const lookup: VariableLookup = (name) => env[name] ?? dotEnv.get(name);
  const problems: LoadProblems = { errors: [], unsetVariables: [] };
  const loaded: LoadedFile[] = [];
  let model: Record<string, unknown> = {};
  for (const file of files) {
    const resolved = await loadResolvedFile(file, lookup, { env, problems });
    loaded.push(...resolved.files);
    model = mergeCompose(model, resolved.model, []);
  }
  if (problems.errors.length > 0) throw new BerthError('ERR_BAD_REQUEST', problems.errors.join('\n'));
  const named = typeof model['name'] === 'string' ? model['name'] : undefined;
  const name =
    options.projectName ?? normaliseProjectName(lookup('COMPOSE_PROJECT_NAME') ?? named ?? basename(dir));
  const holder = (path: FieldPath): LoadedFile => {
    let best = loaded[0] as LoadedFile;
    let bestDepth = -1;
    for (const file of loaded) {
      const depth = existingDepth(file.value, path);
      if (depth > bestDepth || (depth === bestDepth && files.includes(file.display)))
        [best, bestDepth] = [file, depth];
    }
    return best;
  };
  return {
    name,
    dir,
    model,
    lookup,
    unsetVariables: problems.unsetVariables,
    locate: (path) => {
      const file = holder(path);
      return { file: file.display, line: file.document.locate(path, 'value').line };
    },
    scalarSource: (path) => holder(path).document.scalarSource(path),
  };
}

/** Compose's project name rule: lowercase, only a-z 0-9 _ -, starting with a letter or digit. */
export function normaliseProjectName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/^[^a-z0-9]+/, '');
}
