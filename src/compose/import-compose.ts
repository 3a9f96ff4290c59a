/**
 * `berth import compose`: compose files in, berth manifests out, with every field that did not
 * convert said as `file:line: field: why`. Pure of output: the CLI decides where manifests go.
 */
import { BerthError } from '../core/errors.js';
import type { WrittenManifest, WrittenNamespace } from '../manifests/types.js';
import { isRecord, loadComposeProject, type ComposeProject } from './compose-project.js';
import { createConversion, dnsLabelOf, formatMessage, type Conversion } from './conversion.js';
import { convertService, serviceManifest } from './convert-service.js';
import { convertFileEntries } from './file-manifests.js';

export interface ComposeImportOptions {
  files: readonly string[];
  /** Namespace of every manifest (and a Namespace manifest); the default namespace when absent. */
  namespace?: string;
  /** age recipients secrets are encrypted for; secrets are refused without one. */
  recipients: readonly string[];
  env: NodeJS.ProcessEnv;
  /** `--env-file`: read instead of `.env`, in order (see ComposeLoadOptions). */
  envFiles?: readonly string[];
  /**
   * `-p`: the project name (the prefix of images of `build:` services); also the namespace when
   * no namespace is given, as docker compose scopes a project's containers by it.
   */
  projectName?: string;
}

export interface ImportedManifest {
  /** Suggested file name in an output directory. */
  fileName: string;
  manifest: WrittenManifest;
}

export interface ComposeImport {
  project: string;
  manifests: ImportedManifest[];
  /** `file:line: field: why`, warnings and errors in file order. */
  messages: string[];
  errors: number;
}

const TOP_LEVEL = new Set([
  'version',
  'name',
  'services',
  'volumes',
  'configs',
  'secrets',
  'networks',
  'include',
]);

export async function importCompose(options: ComposeImportOptions): Promise<ComposeImport> {
  if (options.namespace !== undefined && dnsLabelOf(options.namespace) !== options.namespace) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `--namespace ${options.namespace}: must be a DNS label (lowercase letters, digits and -)`,
    );
  }
  const project = await loadComposeProject(options.files, options.env, {
    ...(options.envFiles === undefined ? {} : { envFiles: options.envFiles }),
    ...(options.projectName === undefined ? {} : { projectName: options.projectName }),
  });
  const chosen =
    options.namespace ?? (options.projectName === undefined ? undefined : dnsLabelOf(project.name));
  const namespace = chosen === 'default' || chosen === '' ? undefined : chosen;
  const conv = createConversion(project);
  reportProject(project, conv);
  const files = await convertFileEntries(conv, options.recipients, namespace);
  const manifests: ImportedManifest[] = [];
  if (namespace !== undefined) {
    const ns: WrittenNamespace = { apiVersion: 'berth/v1', kind: 'Namespace', metadata: { name: namespace } };
    manifests.push({ fileName: 'namespace.yaml', manifest: ns });
  }
  const services = isRecord(project.model['services']) ? project.model['services'] : {};
  const names = new Map<string, string>();
  for (const [composeName, raw] of Object.entries(services)) {
    if (isRecord(raw) && Array.isArray(raw['profiles']) && raw['profiles'].length > 0) {
      conv.warn(
        ['services', composeName, 'profiles'],
        'a service in a profile is not started by default; converted anyway: remove it if you do not want it deployed',
      );
    }
    const draft = await convertService(composeName, raw, conv, files.references);
    if (draft === null) continue;
    const name = dnsLabelOf(composeName);
    if (name !== composeName)
      conv.warn(
        ['services', composeName],
        `named ${name} (berth names are DNS labels); other services reach it by that name`,
      );
    const taken = names.get(name);
    if (taken !== undefined)
      conv.fail(['services', composeName], `its berth name ${name} is that of service ${taken} too`);
    names.set(name, composeName);
    manifests.push({ fileName: `${name}.yaml`, manifest: serviceManifest(draft, name, namespace) });
  }
  if (Object.keys(services).length === 0) conv.fail(['services'], 'no services to convert');
  for (const config of files.configs)
    manifests.push({ fileName: `config-${config.metadata.name}.yaml`, manifest: config });
  for (const secret of files.secrets)
    manifests.push({ fileName: `secret-${secret.metadata.name}.yaml`, manifest: secret });
  return {
    project: project.name,
    manifests,
    messages: sortByLocation(conv.messages.map((message) => formatMessage(project, message))),
    errors: conv.messages.filter((message) => message.severity === 'error').length,
  };
}

function reportProject(project: ComposeProject, conv: Conversion): void {
  const seen = new Set<string>();
  for (const { name, path } of project.unsetVariables) {
    const key = `${name}@${path.join('.')}`;
    if (!seen.has(key)) conv.warn(path, `${name} is not set: a blank string is used, as compose does`);
    seen.add(key);
  }
  for (const key of Object.keys(project.model)) {
    if (key.startsWith('x-') || !TOP_LEVEL.has(key)) {
      if (!key.startsWith('x-'))
        conv.warn([key], 'not a compose top-level field berth import knows; not converted');
      continue;
    }
    if (key === 'version') conv.warn([key], 'obsolete in the Compose Specification; ignored');
  }
  const networks = project.model['networks'];
  if (isRecord(networks)) {
    for (const name of Object.keys(networks)) {
      if (name !== 'default')
        conv.warn(
          ['networks', name],
          'berth has one network per cluster; services reach each other by name; not converted',
        );
    }
  }
}

/** By file, then line: the order a reader goes through the compose files. */
function sortByLocation(messages: string[]): string[] {
  const key = (message: string): [string, number] => {
    const match = /^(.*?):(\d+): /.exec(message);
    return [match?.[1] ?? '', Number(match?.[2] ?? 0)];
  };
  return messages
    .map((message, index) => ({ message, index, at: key(message) }))
    .sort((a, b) => a.at[0].localeCompare(b.at[0]) || a.at[1] - b.at[1] || a.index - b.index)
    .map(({ message }) => message);
}
