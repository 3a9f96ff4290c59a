import { Command, CommanderError } from 'commander';
import { BerthError } from '../core/errors.js';
import { BERTH_VERSION } from '../core/version.js';
import { redactCredentials } from '../core/url-credential.js';
import { keepYoungGenerationSmall } from '../core/young-generation.js';
/**
 * Each command's module, by the name it registers. A process loads only the module of the command
 * it runs: the agent and the operator are long-lived, and every module loaded (with its libraries:
 * git, age, the metrics registry, the dashboard) stays in their memory for good. Help, --version
 * and an unknown command load them all, in this order (the order of `berth --help`).
 */
const COMMANDS: [name: string, load: () => Promise<(program: Command) => void>][] = [
  ['validate', async () => (await import('./validate.js')).registerValidateCommand],
  ['plan', async () => (await import('./plan.js')).registerPlanCommand],
  ['apply', async () => (await import('./apply.js')).registerApplyCommand],
  ['run', async () => (await import('./run.js')).registerRunCommand],
  ['status', async () => (await import('./status.js')).registerStatusCommand],
  ['history', async () => (await import('./history.js')).registerHistoryCommand],
  ['logs', async () => (await import('./logs.js')).registerLogsCommand],
  ['events', async () => (await import('./events.js')).registerEventsCommand],
  ['rollback', async () => (await import('./rollback.js')).registerRollbackCommand],
  ['agent', async () => (await import('./agent.js')).registerAgentCommand],
  ['token', async () => (await import('./token.js')).registerTokenCommand],
  ['node', async () => (await import('./node.js')).registerNodeCommand],
  ['secret', async () => (await import('./secret.js')).registerSecretCommand],
  ['mesh-host', async () => (await import('./mesh-host.js')).registerMeshHostCommand],
  ['import', async () => (await import('./import.js')).registerImportCommand],
  ['volume', async () => (await import('./volume.js')).registerVolumeCommand],
  ['job', async () => (await import('./job.js')).registerJobCommand],
];

/**
 * Builds the `berth` command tree: with the command named in argv (node, script, command, ...),
 * that command alone; otherwise every command. Each command lives in its own file and registers
 * itself here.
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('berth')
    .description('GitOps operator for plain Docker hosts')
    .version(BERTH_VERSION)
    .showHelpAfterError()
    .exitOverride();
  const named = COMMANDS.filter(([name]) => name === argv[2]);
  const registers = await Promise.all((named.length > 0 ? named : COMMANDS).map(([, load]) => load()));
  for (const register of registers) register(program);
  return program;
}

/** The commands whose process lives as long as the cluster or node it serves. */
const LONG_LIVED = new Set(['run', 'agent', 'mesh-host']);

/** The only place (with the command files it calls) that decides the process exit code. */
export async function main(argv: string[]): Promise<void> {
  hideUrlCredentialsFromPs(argv);
  if (argv[2] !== undefined && LONG_LIVED.has(argv[2])) keepYoungGenerationSmall();
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    const message =
      error instanceof BerthError
        ? error.message
        : `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    process.stderr.write(`berth: ${redactCredentials(message)}\n`);
    process.exitCode = 1;
    // A command that failed exits, even if something it opened (a connection, a timer) would keep
    // the process alive; the grace lets logs and the message above reach their pipes.
    setTimeout(() => process.exit(1), 2000).unref();
  }
}

/**
 * A `--repo` URL with `user:token@` is readable by every local user in `ps` and /proc/PID/cmdline.
 * Rewriting the process title (Linux: the argv memory itself) hides it for all but the first
 * moments of the process; BERTH_GIT_PASSWORD_FILE avoids even those.
 */
function hideUrlCredentialsFromPs(argv: string[]): void {
  const shown = argv.map(redactCredentials);
  if (shown.some((arg, i) => arg !== argv[i])) process.title = shown.join(' ');
}
