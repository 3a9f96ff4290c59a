import { InvalidArgumentError, Option } from 'commander';
import { DEFAULT_SERVICE_ADDRESSES, parseServiceRange } from '../mesh/service-addresses.js';
import { DATA_PLANE_CHOICES, isDataPlaneChoice } from '../mesh/nftables.js';

// The options of a node's data plane, apart from context.ts: `berth agent` takes them, and
// context.ts would load the git and operator modules into the agent's memory with them.

/** `--data-plane`, shared by `berth agent` and the embedded local node of `berth run`. */
export function dataPlaneOption(): Option {
  return (
    new Option(
      '--data-plane <plane>',
      'what carries published TCP ports: "userspace" (a balancer in the mesh host, which retries another replica), "nftables" (kernel DNAT; needs root and nf_tables), or "auto" (nftables where available)',
    )
      .choices(DATA_PLANE_CHOICES)
      // User space until the kernel path keeps every guarantee of it (a connection to a replica
      // that just died is not retried elsewhere): docs/mesh.md.
      .default('userspace')
      .argParser((value: string) => {
        if (!isDataPlaneChoice(value))
          throw new InvalidArgumentError(`one of ${DATA_PLANE_CHOICES.join(', ')}`);
        return value;
      })
  );
}

/** `--service-addresses`, shared by `berth agent` and the embedded local node. */
export function serviceAddressesOption(): Option {
  return new Option(
    '--service-addresses <cidr>',
    'service discovery: containers reach services by name at addresses of this range (made local to the host; needs root), or "off"',
  )
    .default(DEFAULT_SERVICE_ADDRESSES)
    .argParser((value: string) => {
      if (value === 'off') return value;
      try {
        return parseServiceRange(value).cidr;
      } catch (error) {
        throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
      }
    });
}
