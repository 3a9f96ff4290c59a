import { Command, Option } from 'commander';
import { openAdminClient } from '../cluster/admin-client.js';
import { BerthError } from '../core/errors.js';
import { formatLabels } from '../cluster/node-placement.js';
import type { NodeListing } from '../cluster/node-registry.js';
import { DEFAULT_STATE_DIR } from './context.js';
import { alignColumns } from './columns.js';

interface NodeOptions {
  stateDir: string;
}

function table(rows: NodeListing[]): string {
  const lines = [['NAME', 'STATUS', 'AVAILABILITY', 'ADDRESS', 'REPLICAS', 'DATA PLANE', 'AGENT', 'LABELS']];
  for (const r of rows) {
    lines.push([
      r.kind === 'local' ? `${r.name} (local)` : r.name,
      r.status !== 'ready' && r.lastHeard ? `${r.status} (last heard ${r.lastHeard})` : r.status,
      r.incompatible === null ? r.availability : 'drain (agent too old: upgrade it)',
      r.address ?? '-',
      r.replicas === null ? '-' : String(r.replicas),
      r.dataPlane ?? '-',
      r.agentVersion ?? (r.status === 'ready' ? 'older' : '-'),
      Object.entries(r.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '-',
    ]);
  }
  return alignColumns(lines).join('\n');
}

/** `k=v` arguments of `berth node label`, as an object. */
function labelAssignments(values: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values) {
    const separator = value.indexOf('=');
    if (separator <= 0) throw new BerthError('ERR_BAD_REQUEST', `labels are key=value, got "${value}"`);
    labels[value.slice(0, separator)] = value.slice(separator + 1);
  }
  return labels;
}

function labelCommand(stateDir: () => Option): Command {
  return new Command('label')
    .description(
      "set or remove labels of a joined node, then reconcile so placement follows them (constraints, spread). The operator holds a node's labels from its join on (berth agent --label); an agent restarted with other --label values does not change them: this command does",
    )
    .argument('<name>', 'a joined node (see berth node ls)')
    .argument('[labels...]', 'labels to set, key=value')
    .option(
      '--rm <key>',
      'remove the label KEY (repeatable)',
      (key: string, previous: string[] | undefined) => [...(previous ?? []), key],
    )
    .addOption(stateDir())
    .addHelpText(
      'after',
      '\nExamples:\n  berth node label web-1 zone=b disk=ssd\n  berth node label web-1 --rm disk',
    )
    .action(async (name: string, assignments: string[], options: NodeOptions & { rm?: string[] }) => {
      const set = labelAssignments(assignments);
      const remove = options.rm ?? [];
      if (Object.keys(set).length === 0 && remove.length === 0) {
        throw new BerthError('ERR_BAD_REQUEST', 'give labels to set (key=value) or --rm KEY');
      }
      const labels = await (
        await openAdminClient(options.stateDir)
      ).setLabels(name, {
        set,
        remove,
      });
      process.stdout.write(`node ${name} labels: ${formatLabels(labels)}\n`);
    });
}

export function registerNodeCommand(program: Command): void {
  const node = new Command('node').description(
    'list and maintain the nodes of the running operator (talks to it over the cluster endpoint with the admin certificate of --state-dir)',
  );
  const stateDir = () => new Option('--state-dir <dir>', 'the operator state dir').default(DEFAULT_STATE_DIR);

  node.addCommand(
    new Command('ls')
      .description(
        'the nodes: status (ready/down), availability (active/drain; drain while its agent is older than the operator), address, replicas, data plane, agent version, labels',
      )
      .addOption(stateDir())
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
      .action(async (options: NodeOptions & { format: 'text' | 'json' }) => {
        const rows = await (await openAdminClient(options.stateDir)).listNodes();
        process.stdout.write(
          options.format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : `${table(rows)}\n`,
        );
      }),
  );
  node.addCommand(
    new Command('drain')
      .description(
        'move every replica off NAME (new ones healthy elsewhere before the old ones stop); it takes no new ones',
      )
      .argument('<name>')
      .addOption(stateDir())
      .action(async (name: string, options: NodeOptions) => {
        await (await openAdminClient(options.stateDir)).setAvailability(name, 'drain');
        process.stdout.write(`node ${name}: drain\n`);
      }),
  );
  node.addCommand(
    new Command('activate')
      .description('let NAME take replicas again')
      .argument('<name>')
      .addOption(stateDir())
      .action(async (name: string, options: NodeOptions) => {
        await (await openAdminClient(options.stateDir)).setAvailability(name, 'active');
        process.stdout.write(`node ${name}: active\n`);
      }),
  );
  node.addCommand(
    new Command('rm')
      .description(
        'remove a joined node: its certificate is revoked, its connection dropped; its replicas move',
      )
      .argument('<name>')
      .addOption(stateDir())
      .action(async (name: string, options: NodeOptions) => {
        await (await openAdminClient(options.stateDir)).removeNode(name);
        process.stdout.write(`node ${name}: removed\n`);
      }),
  );
  node.addCommand(labelCommand(stateDir));
  program.addCommand(node);
}
