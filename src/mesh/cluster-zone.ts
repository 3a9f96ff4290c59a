import { isTopLevelName } from './top-level-names.js';

/**
 * The DNS zone of service names, pure. Service names live in a zone of their own, so they cannot
 * shadow a name of the outside world: the node's DNS server answers only inside it and relays
 * everything else. `.internal` is reserved by ICANN for private use and is never delegated.
 *
 * - `<service>.<namespace>.svc.berth.internal`: the full name, answered for every service.
 * - `<service>.<namespace>.<from>.svc.berth.internal`: what a container of namespace `from`
 *   asks for `<service>.<namespace>` through its first search domain. Unlike Kubernetes, no
 *   `svc.<zone>` search domain turns `github.com` into a service name: the two-label short form
 *   is resolved here, and refused for a namespace named like a top-level domain (`com`, `io`,
 *   `shop`, `local`...), whose services other namespaces reach as `web.shop.svc` or in full.
 * - The apex, `svc.berth.internal` and `<namespace>.svc.berth.internal` of a namespace with
 *   services exist without records; every other name of the zone does not exist.
 */
export const CLUSTER_ZONE = 'berth.internal';

/**
 * Dots a name needs before a container's resolver asks for it as it is, before the search
 * domains: 3, so `web`, `web.shop` and `web.shop.svc` go to the search domains first (musl never
 * tries them for a name with as many dots as ndots), and `www.example.com` costs two questions
 * answered locally before it is relayed.
 */
export const CONTAINER_NDOTS = 3;

/** Search domains and resolver options of a container of `namespace`. */
export function containerResolverSettings(namespace: string): { search: string[]; options: string[] } {
  return {
    search: [namespaceDomain(namespace), CLUSTER_ZONE],
    options: [`ndots:${CONTAINER_NDOTS}`],
  };
}

/** The full DNS name of a service. */
export function serviceDomainName(namespace: string, service: string): string {
  return `${service}.${namespaceDomain(namespace)}`;
}

function namespaceDomain(namespace: string): string {
  return `${namespace}.svc.${CLUSTER_ZONE}`;
}

/** Whether `name` (lowercase, without the final dot) is inside the zone. */
export function isInClusterZone(name: string): boolean {
  return name === CLUSTER_ZONE || name.endsWith(`.${CLUSTER_ZONE}`);
}

/** What a name inside the zone is: a service (`namespace/name`), a name without records, or none. */
export type ZoneName = { service: string } | 'no-records' | 'no-such-name';

/**
 * Looks a name of the zone up among the services (`namespace/name` keys). `name` is lowercase,
 * without the final dot, and inside the zone.
 */
export function lookupZoneName(name: string, services: ReadonlySet<string>): ZoneName {
  if (name === CLUSTER_ZONE) return 'no-records';
  const labels = name.slice(0, -(CLUSTER_ZONE.length + 1)).split('.');
  if (labels.pop() !== 'svc') return 'no-such-name';
  const service = (namespace: string, serviceName: string): ZoneName =>
    services.has(`${namespace}/${serviceName}`) ? { service: `${namespace}/${serviceName}` } : 'no-such-name';
  const [first, second] = labels;
  switch (labels.length) {
    case 0:
      return 'no-records';
    case 1:
      return [...services].some((key) => key.startsWith(`${first}/`)) ? 'no-records' : 'no-such-name';
    case 2:
      return service(second!, first!);
    case 3:
      // Asked from a container of namespace labels[2]: the short form of an outside name is not ours.
      return isTopLevelName(second!) ? 'no-such-name' : service(second!, first!);
    default:
      return 'no-such-name';
  }
}
