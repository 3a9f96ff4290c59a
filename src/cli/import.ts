/**
 * `berth import compose [FILE...]`: converts Compose Specification files into berth manifests,
 * one file per manifest in -o DIR or a multi-document YAML on stdout. Every field that did not
 * convert is said on stderr as `file:line: field: why`. Exit 0: converted; 1: an error (nothing
 * is written then).
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { stringify } from 'yaml';
import { BerthError } from '../core/errors.js';
import { importCompose, type ImportedManifest } from '../compose/import-compose.js';

interface ImportOptions {
  namespace?: string;
  envFile?: string[];
  projectName?: string;
  output?: string;
  recipient?: string[];
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** The files docker compose reads when none is named, in its order of preference. */
const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

export function registerImportCommand(program: Command): void {
  const importCommand = new Command('import').description('convert other formats into berth manifests');
  importCommand
    .command('compose')
    .description('convert Compose files into berth manifests (exit 0: converted, 1: error)')
    .argument(
      '[files...]',
      'compose files, later ones overriding earlier ones (default: compose.yaml in this directory)',
    )
    .option('--namespace <namespace>', 'namespace of every manifest (a Namespace manifest is written too)')
    .option(
      '--env-file <file>',
      'read variables from this file instead of .env (repeatable, later ones win; the environment wins over all)',
      collect,
    )
    .option(
      '-p, --project-name <name>',
      'project name (over COMPOSE_PROJECT_NAME and name:): names the images of build: services, and is the namespace when --namespace is not given',
    )
    .option('-o, --output <dir>', 'write one file per manifest into this directory instead of stdout')
    .option(
      '-r, --recipient <age1...>',
      'encrypt secrets for this age recipient (repeatable; needed when there are secrets)',
      collect,
    )
    .addHelpText(
      'after',
      `
Variables are interpolated as docker compose does, from the process environment and the .env
file next to the first compose file (or the --env-file files). include: and extends: are
resolved. Fields with no berth form are listed on stderr.

Examples:
  berth import compose -o deploy/
  berth import compose compose.yaml compose.prod.yaml --namespace shop -r age1... > deploy/shop.yaml`,
    )
    .action(async (files: string[], options: ImportOptions) => {
      const result = await importCompose({
        files: files.length > 0 ? files : [await defaultFile()],
        ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        recipients: options.recipient ?? [],
        env: process.env,
        ...(options.envFile === undefined ? {} : { envFiles: options.envFile }),
        ...(options.projectName === undefined ? {} : { projectName: options.projectName }),
      });
      for (const message of result.messages) process.stderr.write(`${message}\n`);
      if (result.errors > 0) {
        process.stderr.write(
          `berth import compose: ${result.errors} error${result.errors === 1 ? '' : 's'}, nothing written\n`,
        );
        process.exitCode = 1;
        return;
      }
      if (options.output === undefined) {
        process.stdout.write(result.manifests.map(({ manifest }) => toYaml(manifest)).join('---\n'));
        return;
      }
      await writeManifests(options.output, result.manifests);
      process.stderr.write(
        `berth import compose: ${result.manifests.length} manifests written to ${options.output}\n`,
      );
    });
  program.addCommand(importCommand);
}

async function defaultFile(): Promise<string> {
  for (const file of DEFAULT_FILES) {
    if (
      await access(file).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  throw new BerthError(
    'ERR_BAD_REQUEST',
    `no compose file given and none found here (${DEFAULT_FILES.join(', ')})`,
  );
}

function toYaml(manifest: ImportedManifest['manifest']): string {
  // lineWidth 0: long commands and armored secrets stay on their own lines, never folded.
  return stringify(manifest, { lineWidth: 0 });
}

async function writeManifests(dir: string, manifests: readonly ImportedManifest[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const { fileName, manifest } of manifests) {
    await writeFile(join(dir, fileName), toYaml(manifest), { flag: 'wx' }).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST')
          throw new BerthError('ERR_BAD_REQUEST', `${join(dir, fileName)} exists already; not overwritten`);
        throw error;
      },
    );
  }
}
