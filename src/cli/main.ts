import { Command, CommanderError } from 'commander';
import { BerthError } from '../core/errors.js';
import { BERTH_VERSION } from '../core/version.js';
import { redactCredentials } from '../core/url-credential.js';
import { registerAgentCommand } from './agent.js';
import { registerApplyCommand } from './apply.js';
import { registerEventsCommand } from './events.js';
import { registerHistoryCommand } from './history.js';
import { registerImportCommand } from './import.js';
import { registerJobCommand } from './job.js';
import { registerLogsCommand } from './logs.js';
import { registerMeshHostCommand } from './mesh-host.js';
import { registerNodeCommand } from './node.js';
import { registerPlanCommand } from './plan.js';
import { registerRollbackCommand } from './rollback.js';
import { registerRunCommand } from './run.js';
import { registerSecretCommand } from './secret.js';
import { registerStatusCommand } from './status.js';
import { registerTokenCommand } from './token.js';
import { registerValidateCommand } from './validate.js';
import { registerVolumeCommand } from './volume.js';

/** Builds the `berth` command tree. Each command lives in its own file and registers itself here. */
export function buildProgram(): Command {
  const program = new Command('berth')
    .description('GitOps operator for plain Docker hosts')
    .version(BERTH_VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerValidateCommand(program);
  registerPlanCommand(program);
  registerApplyCommand(program);
  registerRunCommand(program);
  registerStatusCommand(program);
  registerHistoryCommand(program);
  registerLogsCommand(program);
  registerEventsCommand(program);
  registerRollbackCommand(program);
  registerAgentCommand(program);
  registerTokenCommand(program);
  registerNodeCommand(program);
  registerSecretCommand(program);
  registerMeshHostCommand(program);
  registerImportCommand(program);
  registerVolumeCommand(program);
  registerJobCommand(program);
  return program;
}

/** The only place (with the command files it calls) that decides the process exit code. */
export async function main(argv: string[]): Promise<void> {
  hideUrlCredentialsFromPs(argv);
  const program = buildProgram();
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
