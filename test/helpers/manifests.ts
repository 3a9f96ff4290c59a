/**
 * The manifests tests commit to their repositories, as YAML text: real files in real repositories,
 * read by the same loader users' files go through. Each builder returns one document; join them
 * into a file with manifestFile.
 *
 *   const files = {
 *     'deploy/all.yaml': manifestFile(namespaceManifest(ns), webService({ namespace: ns, replicas: 2 })),
 *   };
 *
 * Defaults are the test ones: the offline busybox images of scripts/build-images.sh, health checked
 * every second, a short stop grace and an init process (busybox httpd as PID 1 ignores SIGTERM).
 * An override replaces a default field whole; `null` leaves the field out.
 *
 * Deliberately broken manifests stay literal text in their tests and under test/fixtures: there,
 * the exact bytes are the point.
 */
import { stringify } from 'yaml';
import type { WrittenHealthcheck, WrittenService } from '../../src/manifests/types.js';
import { TEST_IMAGES } from './docker.js';

type ServiceFields = WrittenService['spec'];

export type ServiceOptions = {
  /** Default `web`. */
  name?: string;
  /** Left out (the `default` namespace) unless given. */
  namespace?: string;
} & { [Field in keyof ServiceFields]?: ServiceFields[Field] | null };

/** The check of the web image: GET / on 8080 every second, two misses make it unhealthy. */
export const WEB_HEALTHCHECK: WrittenHealthcheck = {
  http: { port: 8080 },
  interval: '1s',
  timeout: '1s',
  retries: 2,
};

/** A web image command whose replicas also serve their hostname at /id, to see which one answered. */
export const SERVE_HOSTNAME_AT_ID = ['sh', '-c', 'hostname > /www/id && exec httpd -f -p 8080 -h /www'];

const WEB_DEFAULTS: Partial<ServiceFields> = {
  image: TEST_IMAGES.webV1,
  ports: [{ target: 8080 }],
  healthcheck: WEB_HEALTHCHECK,
  stopGracePeriod: '1s',
  init: true,
};

const SLEEPER_DEFAULTS: Partial<ServiceFields> = {
  image: TEST_IMAGES.busybox,
  command: ['sleep', '3600'],
  stopGracePeriod: '1s',
  init: true,
};

/** A Service of the web test image (`berth-test/web:v1` serving its version on 8080). */
export function webService(options: ServiceOptions = {}): string {
  return service(WEB_DEFAULTS, options);
}

/** A Service that only sleeps (busybox, no port, no check): a client, a consumer of files. */
export function sleeperService(options: ServiceOptions = {}): string {
  return service(SLEEPER_DEFAULTS, options);
}

/** The order fields are written in, as in the schema: a committed file reads like a hand-written one. */
const FIELD_ORDER: (keyof ServiceFields)[] = [
  'image',
  'command',
  'args',
  'env',
  'envFrom',
  'mode',
  'replicas',
  'ports',
  'configs',
  'secrets',
  'healthcheck',
  'resources',
  'placement',
  'update',
  'rollback',
  'restart',
  'stopGracePeriod',
  'user',
  'workingDir',
  'init',
];

function service(defaults: Partial<ServiceFields>, options: ServiceOptions): string {
  const { name = 'web', namespace, ...overrides } = options;
  const fields: Record<string, unknown> = { ...defaults, ...overrides };
  // Fields the order does not know yet come last rather than not at all.
  const names = [...new Set<string>([...FIELD_ORDER, ...Object.keys(fields)])];
  const spec = Object.fromEntries(
    names
      .filter((field) => fields[field] !== undefined && fields[field] !== null)
      .map((field) => [field, fields[field]]),
  );
  return document('Service', metadata(name, namespace), { spec });
}

/** A Job of the busybox image (init, a short stop grace) with `spec` on top. */
export function jobManifest(name: string, namespace: string, spec: Record<string, unknown>): string {
  const defaults = { image: TEST_IMAGES.busybox, init: true, stopGracePeriod: '1s' };
  return document('Job', metadata(name, namespace), { spec: { ...defaults, ...spec } });
}

export function namespaceManifest(name: string): string {
  return document('Namespace', { name }, {});
}

export interface DataManifestOptions {
  name: string;
  namespace?: string;
  data: Record<string, string>;
}

export function configManifest(options: DataManifestOptions): string {
  return document('Config', metadata(options.name, options.namespace), { data: options.data });
}

/** A Secret: every value an age payload in ASCII armor (see ageEncrypt in test/helpers/age.ts). */
export function secretManifest(options: DataManifestOptions): string {
  return document('Secret', metadata(options.name, options.namespace), { data: options.data });
}

/** Documents as one file. */
export function manifestFile(...documents: string[]): string {
  return documents.join('---\n');
}

function metadata(name: string, namespace: string | undefined): Record<string, string> {
  return namespace === undefined ? { name } : { name, namespace };
}

function document(kind: string, meta: Record<string, string>, body: Record<string, unknown>): string {
  // lineWidth 0: no folding, so a long command or armored line stays one line as written.
  return stringify({ apiVersion: 'berth/v1', kind, metadata: meta, ...body }, { lineWidth: 0 });
}
