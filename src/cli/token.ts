import { Command } from 'commander';
import { readClusterEndpoint, currentJoinToken, rotateJoinSecret } from '../cluster/cluster-identity.js';
import { joinCommandFor } from '../cluster/operator-cluster.js';
import { DEFAULT_STATE_DIR } from './context.js';

interface TokenOptions {
  stateDir: string;
  rotate: boolean;
  quiet: boolean;
}

export function registerTokenCommand(program: Command): void {
  program.addCommand(
    new Command('token')
      .description('print the command that joins a node to this cluster (as `docker swarm join-token`)')
      .option(
        '--rotate',
        'replace the join secret: tokens printed before no longer join (joined nodes stay)',
        false,
      )
      .option('-q, --quiet', 'print the token only', false)
      .option('--state-dir <dir>', 'the operator state dir', DEFAULT_STATE_DIR)
      .action(async (options: TokenOptions) => {
        if (options.rotate) await rotateJoinSecret(options.stateDir);
        const token = await currentJoinToken(options.stateDir);
        if (options.quiet) {
          process.stdout.write(`${token}\n`);
          return;
        }
        const endpoint = await readClusterEndpoint(options.stateDir);
        if (options.rotate) process.stdout.write('Join token rotated.\n');
        process.stdout.write(
          `To add a node to this cluster, run on it:\n\n    ${joinCommandFor(endpoint, token)}\n\n`,
        );
      }),
  );
}
