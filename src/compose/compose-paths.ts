/**
 * Relative paths in a compose file are relative to the file's own project directory. A service
 * taken from another directory (an included project, an `extends` from another file) has its
 * paths rewritten relative to the directory of the file that takes it, so they still name the
 * same files once everything resolves from one project directory.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { isRecord } from './compose-model.js';

/** A path written in `from` as written in `to`: `./`-prefixed when it stays below `to`. */
export function rebasePath(path: string, from: string, to: string): string {
  if (isAbsolute(path) || path.startsWith('~') || from === to) return path;
  const moved = relative(to, resolve(from, path));
  return moved.startsWith('..') ? moved : `./${moved}`;
}

/** A short volume (`./src:/dst`) or a long one with a host source: a bind whose source moves. */
function rebaseVolume(volume: unknown, from: string, to: string): unknown {
  if (typeof volume === 'string') {
    const [source, ...rest] = volume.split(':');
    if (source === undefined || rest.length === 0 || !source.startsWith('.')) return volume;
    return [rebasePath(source, from, to), ...rest].join(':');
  }
  if (isRecord(volume) && volume['type'] === 'bind' && typeof volume['source'] === 'string')
    return { ...volume, source: rebasePath(volume['source'], from, to) };
  return volume;
}

function rebaseEnvFile(entry: unknown, from: string, to: string): unknown {
  if (typeof entry === 'string') return rebasePath(entry, from, to);
  if (isRecord(entry) && typeof entry['path'] === 'string')
    return { ...entry, path: rebasePath(entry['path'], from, to) };
  return entry;
}

/** One service's paths: env_file, build context, bind sources and extends.file. */
export function rebaseServicePaths(service: unknown, from: string, to: string): unknown {
  if (!isRecord(service) || from === to) return service;
  const out: Record<string, unknown> = { ...service };
  const envFile = out['env_file'];
  if (envFile !== undefined)
    out['env_file'] = Array.isArray(envFile)
      ? envFile.map((e) => rebaseEnvFile(e, from, to))
      : rebaseEnvFile(envFile, from, to);
  const build = out['build'];
  if (typeof build === 'string') out['build'] = rebasePath(build, from, to);
  else if (isRecord(build) && typeof build['context'] === 'string')
    out['build'] = { ...build, context: rebasePath(build['context'], from, to) };
  if (Array.isArray(out['volumes'])) out['volumes'] = out['volumes'].map((v) => rebaseVolume(v, from, to));
  const extended = out['extends'];
  if (isRecord(extended) && typeof extended['file'] === 'string')
    out['extends'] = { ...extended, file: rebasePath(extended['file'], from, to) };
  return out;
}

/** A whole compose model's paths: its services' and its configs' and secrets' `file`. */
export function rebaseModelPaths(
  model: Record<string, unknown>,
  from: string,
  to: string,
): Record<string, unknown> {
  if (from === to) return model;
  const out: Record<string, unknown> = { ...model };
  const services = out['services'];
  if (isRecord(services))
    out['services'] = Object.fromEntries(
      Object.entries(services).map(([name, s]) => [name, rebaseServicePaths(s, from, to)]),
    );
  for (const kind of ['configs', 'secrets']) {
    const entries = out[kind];
    if (!isRecord(entries)) continue;
    out[kind] = Object.fromEntries(
      Object.entries(entries).map(([name, e]) => [
        name,
        isRecord(e) && typeof e['file'] === 'string' ? { ...e, file: rebasePath(e['file'], from, to) } : e,
      ]),
    );
  }
  return out;
}
