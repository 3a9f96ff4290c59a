import type { DesiredState } from '../manifests/types.js';

/**
 * Valid manifests that ask for something this build of berth cannot do yet. They are refused
 * as a whole (nothing half-applied), with a message that says what to change.
 */
export function unsupportedFeatures(desired: DesiredState): string[] {
  const problems: string[] = [];
  for (const service of desired.services) {
    service.ports.forEach((port, i) => {
      // The routing mesh balances TCP connections; UDP has no connection to drain or retry.
      if (port.protocol !== 'tcp' && port.appProtocol === 'http') {
        problems.push(
          `service ${service.namespace}/${service.name}: spec.ports[${i}].appProtocol http needs protocol tcp (HTTP/1.1 runs over TCP)`,
        );
      }
      if (port.published !== null && port.protocol !== 'tcp') {
        problems.push(
          `service ${service.namespace}/${service.name}: spec.ports[${i}].published (${port.published}/${port.protocol}): the routing mesh serves TCP only; remove \`published\` — each replica still publishes its target port on an ephemeral port of its node`,
        );
      }
    });
  }
  return problems;
}
