import type { FieldPath } from '../manifests/field-path.js';
import { atFieldPath } from '../manifests/field-path.js';
import type { DesiredState } from '../manifests/types.js';

/** A field of a Service that asks for something this build of berth cannot do yet. */
export interface UnsupportedFeature {
  namespace: string;
  service: string;
  path: FieldPath;
  /** What to change, without the field path (callers print the path or its file:line). */
  message: string;
}

/**
 * Valid manifests that ask for something this build of berth cannot do yet. They are refused
 * as a whole (nothing half-applied), with a message that says what to change.
 */
export function findUnsupportedFeatures(desired: DesiredState): UnsupportedFeature[] {
  const found: UnsupportedFeature[] = [];
  for (const service of desired.services) {
    const at = (path: FieldPath, message: string): void =>
      void found.push({ namespace: service.namespace, service: service.name, path, message });
    service.ports.forEach((port, i) => {
      // The routing mesh balances TCP connections; UDP has no connection to drain or retry.
      if (port.protocol !== 'tcp' && port.appProtocol === 'http') {
        at(['spec', 'ports', i, 'appProtocol'], 'http needs protocol tcp (HTTP/1.1 runs over TCP)');
      }
      if (port.published !== null && port.protocol !== 'tcp') {
        at(
          ['spec', 'ports', i, 'published'],
          `${port.published}/${port.protocol} cannot be published: the routing mesh serves TCP only; remove \`published\` — each replica still publishes its target port on an ephemeral port of its node`,
        );
      }
    });
  }
  return found;
}

/** Each unsupported feature as one line naming its service and field. */
export function unsupportedFeatures(desired: DesiredState): string[] {
  return findUnsupportedFeatures(desired).map(describeUnsupportedFeature);
}

export function describeUnsupportedFeature(feature: UnsupportedFeature): string {
  return `service ${feature.namespace}/${feature.service}: ${atFieldPath(feature.path, feature.message)}`;
}
