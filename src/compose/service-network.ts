/**
 * Ports, expose and networks. A compose published port becomes a berth published port, which the
 * routing mesh serves on every node (Swarm's ingress mode, not a host port of one container).
 */
import { parseShortPort, scalarText, type ComposePort } from './compose-values.js';
import { isRecord } from './compose-project.js';
import type { Conversion, FieldHandler, ServiceDraft } from './conversion.js';

export const ports: FieldHandler = (value, field, draft, conv) => {
  if (!Array.isArray(value)) {
    conv.fail(field, 'must be a list');
    return;
  }
  for (const [index, entry] of value.entries()) {
    const at = [...field, index];
    const parsed = isRecord(entry) ? longPort(entry) : parseShortPort(entry as string | number);
    if (typeof parsed === 'string') {
      conv.warn(at, `${parsed}; not converted`);
      continue;
    }
    if (isRecord(entry) && entry['mode'] === 'host') {
      conv.warn(
        at,
        'mode: host has no berth form: the port is published through the routing mesh on every node',
      );
    }
    for (const port of parsed) {
      if (port.hostIp !== undefined && port.hostIp !== '0.0.0.0' && port.hostIp !== '::') {
        conv.warn(
          at,
          `host IP ${port.hostIp} ignored: berth publishes on every address of every node (restrict it with a firewall)`,
        );
      }
      if (port.published === undefined && !isRecord(entry)) {
        conv.warn(
          at,
          `docker would publish ${port.target} on a random host port; berth leaves it unpublished (reachable inside the cluster)`,
        );
      }
      addPort(draft, conv, at, port);
    }
  }
};

function longPort(entry: Record<string, unknown>): ComposePort[] | string {
  const target = Number(entry['target']);
  if (!Number.isInteger(target) || target < 1 || target > 65535) return 'target must be a port number';
  const protocol = entry['protocol'] ?? 'tcp';
  if (protocol !== 'tcp' && protocol !== 'udp')
    return `${scalarText(protocol)} ports are not supported (tcp and udp only)`;
  const port: ComposePort = { target, protocol };
  if (entry['published'] !== undefined) {
    const published = parseShortPort(`${scalarText(entry['published'])}:${target}`);
    if (typeof published === 'string') return published;
    const first = published[0];
    if (published.length !== 1 || first?.published === undefined)
      return 'published port ranges are not converted';
    port.published = first.published;
  }
  if (typeof entry['host_ip'] === 'string') port.hostIp = entry['host_ip'];
  return [port];
}

function addPort(draft: ServiceDraft, conv: Conversion, at: (string | number)[], port: ComposePort): void {
  const list = (draft.spec.ports ??= []);
  const same = list.find((p) => p.target === port.target && (p.protocol ?? 'tcp') === port.protocol);
  if (same !== undefined) {
    if (same.published === undefined && port.published !== undefined) same.published = port.published;
    else if (port.published !== undefined && same.published !== port.published) {
      conv.warn(
        at,
        `berth publishes a target port once; ${port.target} is already published on ${same.published}`,
      );
    }
    return;
  }
  list.push({
    target: port.target,
    ...(port.published === undefined ? {} : { published: port.published }),
    ...(port.protocol === 'udp' ? { protocol: 'udp' as const } : {}),
  });
}

/** Exposed ports are reachable by other services only: unpublished berth ports. */
export const expose: FieldHandler = (value, field, draft, conv) => {
  for (const [index, entry] of (Array.isArray(value) ? value : []).entries()) {
    const parsed = parseShortPort(entry as string | number);
    if (typeof parsed === 'string' || parsed.some((port) => port.published !== undefined)) {
      conv.warn([...field, index], `not a container port: ${JSON.stringify(entry)}; not converted`);
      continue;
    }
    for (const port of parsed) addPort(draft, conv, [...field, index], port);
  }
};

/**
 * Services of one compose project share its default network and find each other by name; berth
 * services of one namespace find each other by name through service discovery, which is the same.
 * Other networks (isolation between groups of services) have no berth form.
 */
export const networks: FieldHandler = (value, field, _draft, conv) => {
  const names = Array.isArray(value) ? value.map(String) : isRecord(value) ? Object.keys(value) : [];
  for (const name of names) {
    if (name === 'default') continue;
    conv.warn(
      [...field, name],
      'berth has one network per cluster (services reach each other by name); network isolation is not converted',
    );
  }
  if (isRecord(value)) {
    for (const [name, options] of Object.entries(value)) {
      if (isRecord(options) && (options['aliases'] !== undefined || options['ipv4_address'] !== undefined)) {
        conv.warn(
          [...field, name],
          'aliases and fixed addresses are not converted: a service is reached by its name',
        );
      }
    }
  }
};
