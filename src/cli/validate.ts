/**
 * `berth validate [PATH]`: schema and cross-reference checks of a manifest tree, and every check
 * that plan and apply run before touching anything without needing a cluster or a key (the
 * operator's checkRevision), so what validate accepts, plan accepts. For CI and for people. Exit 0 and a one-line summary when valid; exit 1 and one `file:line:col: message` line
 * per problem otherwise (on stdout, so CI captures them together with the count).
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { MAX_MANIFEST_FILE_BYTES } from '../manifests/defaults.js';
import {
  isManifestPath,
  loadManifests,
  readManifestFilesFromDir,
  sortProblems,
  type ManifestFile,
} from '../manifests/load.js';
import { atFieldPath } from '../manifests/field-path.js';
import { locateManifestField } from '../manifests/locate.js';
import { readAtMost } from '../manifests/manifest-files.js';
import type { DesiredState, ManifestProblem } from '../manifests/types.js';
import type { UnsupportedFeature } from '../operator/capabilities.js';
import { checkRevision } from '../operator/preflight.js';

/** Where the command writes and how it reports its exit code; the process by default. */
export interface ValidateCommandIO {
  stdout(text: string): void;
  stderr(text: string): void;
  setExitCode(code: number): void;
}

const processIO: ValidateCommandIO = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

export interface ManifestCounts {
  manifests: number;
  services: number;
  configs: number;
  secrets: number;
  namespaces: number;
}

/** The `--format json` document. `counts` is null when the manifests are not valid. */
export interface ValidateReport {
  valid: boolean;
  problems: ManifestProblem[];
  counts: ManifestCounts | null;
}

export function registerValidateCommand(program: Command, io: ValidateCommandIO = processIO): void {
  program
    .command('validate')
    .description('check manifests against the schemas and each other (exit 0: valid, 1: invalid)')
    .argument('[path]', 'a directory of manifests (every .yaml/.yml under it) or a single manifest file', '.')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (path: string, options: { format: 'text' | 'json' }) => {
      let report: ValidateReport;
      try {
        report = await validatePath(path);
      } catch (error) {
        // Only unexpected I/O failures land here (permissions, a file vanishing mid-read).
        io.stderr(`berth validate: ${error instanceof Error ? error.message : String(error)}\n`);
        io.setExitCode(1);
        return;
      }
      io.stdout(
        options.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatText(path, report),
      );
      io.setExitCode(report.valid ? 0 : 1);
    });
}

/** Validates a directory or a single file; problem paths are printed relative to where `path` is. */
export async function validatePath(path: string): Promise<ValidateReport> {
  const problems: ManifestProblem[] = [];
  let files: ManifestFile[];
  let displayRoot: string;
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw error;
  });
  if (info === null) {
    return invalid([{ file: path, line: 0, col: 0, message: 'no such file or directory' }]);
  }
  if (info.isDirectory()) {
    displayRoot = path;
    files = await readManifestFilesFromDir(path, { onProblem: (problem) => problems.push(problem) });
  } else {
    displayRoot = dirname(path);
    const name = basename(path);
    if (!isManifestPath(name)) {
      return invalid([
        { file: path, line: 0, col: 0, message: 'not a manifest file (manifests end in .yaml or .yml)' },
      ]);
    }
    files = [{ path: name, content: await readAtMost(path, MAX_MANIFEST_FILE_BYTES + 1), size: info.size }];
  }

  const result = checkRevision(loadManifests(files, { revision: 'working-tree' }));
  if (!result.ok) {
    problems.push(...result.problems, ...result.unsupported.map((feature) => locateFeature(files, feature)));
  }
  const located = sortProblems(problems).map((problem) => ({
    ...problem,
    file: join(displayRoot, problem.file),
  }));
  if (located.length > 0 || !result.ok) return invalid(located);
  return { valid: true, problems: [], counts: countManifests(result.desired) };
}

/** A feature the operator refuses, at the file:line:col of the field that asks for it. */
function locateFeature(files: readonly ManifestFile[], feature: UnsupportedFeature): ManifestProblem {
  const service = { kind: 'Service' as const, namespace: feature.namespace, name: feature.service };
  const at = locateManifestField(files, service, feature.path);
  const message = atFieldPath(feature.path, feature.message);
  if (at !== null) return { ...at, message };
  return {
    file: '.',
    line: 0,
    col: 0,
    message: `service ${feature.namespace}/${feature.service}: ${message}`,
  };
}

function invalid(problems: ManifestProblem[]): ValidateReport {
  return { valid: false, problems, counts: null };
}

function countManifests(desired: DesiredState): ManifestCounts {
  const { services, configs, secrets, namespaces } = desired;
  return {
    manifests: services.length + configs.length + secrets.length + namespaces.length,
    services: services.length,
    configs: configs.length,
    secrets: secrets.length,
    namespaces: namespaces.length,
  };
}

function formatText(path: string, report: ValidateReport): string {
  if (!report.valid) {
    const lines = report.problems.map((problem) =>
      problem.line > 0
        ? `${problem.file}:${problem.line}:${problem.col}: ${problem.message}`
        : `${problem.file}: ${problem.message}`,
    );
    lines.push(plural(report.problems.length, 'problem'));
    return `${lines.join('\n')}\n`;
  }
  const counts = report.counts;
  if (counts === null || counts.manifests === 0) return `${path}: no manifests found (.yaml or .yml files)\n`;
  const kinds = [
    plural(counts.services, 'service'),
    plural(counts.configs, 'config'),
    plural(counts.secrets, 'secret'),
    plural(counts.namespaces, 'namespace'),
  ].filter((text) => !text.startsWith('0 '));
  return `${path}: ${plural(counts.manifests, 'manifest')} valid (${kinds.join(', ')})\n`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
