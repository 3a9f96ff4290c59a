// A minimal `berth` with only the validate command, so tests can run it as a real process
// (exit code, stdout) without depending on the rest of the CLI.
import { Command } from 'commander';
import { registerValidateCommand } from '../../src/cli/validate.js';

const program = new Command('berth').exitOverride();
registerValidateCommand(program);
try {
  await program.parseAsync(process.argv);
} catch {
  process.exitCode ||= 1;
}
