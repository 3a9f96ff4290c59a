/**
 * The soak's one service and the commits that change it: good ones (another image tag or another
 * env value) and bad ones (replicas that fail their health check, a crash-looping image, a file
 * that is not YAML). The repository holds a single file, app.yaml.
 */
import { TEST_IMAGES } from '../../test/helpers/docker.js';
import { manifestFile, namespaceManifest, webService } from '../../test/helpers/manifests.js';

export const NAMESPACE = 'soak';
export const SERVICE = 'web';

export interface GoodVariant {
  image: typeof TEST_IMAGES.webV1 | typeof TEST_IMAGES.webV2;
  greeting: string;
}

export type BadKind = 'unhealthy' | 'crash' | 'invalid-yaml';

/** What the published port answers with a variant's image. */
export function bodyOf(variant: GoodVariant): string {
  return variant.image === TEST_IMAGES.webV1 ? 'v1' : 'v2';
}

export function describeVariant(variant: GoodVariant): string {
  return `${variant.image} GREETING=${variant.greeting}`;
}

interface ServiceShape {
  replicas: number;
  published: number;
}

function service(shape: ServiceShape, fields: Parameters<typeof webService>[0]): string {
  return manifestFile(
    namespaceManifest(NAMESPACE),
    webService({
      namespace: NAMESPACE,
      name: SERVICE,
      replicas: shape.replicas,
      ports: [{ target: 8080, published: shape.published }],
      update: { parallelism: 2, order: 'start-first', delay: '0s', monitor: '1s' },
      ...fields,
    }),
  );
}

/** Only the namespace: the service arrives once every node has joined, so placement sees all three. */
export function emptyFiles(): Record<string, string> {
  return { 'app.yaml': namespaceManifest(NAMESPACE) };
}

export function goodFiles(shape: ServiceShape, variant: GoodVariant): Record<string, string> {
  return { 'app.yaml': service(shape, { image: variant.image, env: { GREETING: variant.greeting } }) };
}

export function badFiles(shape: ServiceShape, kind: BadKind, current: GoodVariant): Record<string, string> {
  const env = { GREETING: current.greeting };
  switch (kind) {
    case 'unhealthy':
      // Serves nothing at /: the health check (GET /) fails while the container runs.
      return {
        'app.yaml': service(shape, {
          image: current.image,
          env,
          command: ['sh', '-c', 'rm /www/index.html && exec httpd -f -p 8080 -h /www'],
        }),
      };
    case 'crash':
      return { 'app.yaml': service(shape, { image: TEST_IMAGES.crash, env }) };
    case 'invalid-yaml':
      return {
        'app.yaml': `apiVersion: berth/v1\nkind: Service\nmetadata: { name: ${SERVICE}, namespace: ${NAMESPACE}\nspec: [\n`,
      };
  }
}

/**
 * The next good variant: another image tag or another env value, never a spec seen before. A spec
 * seen before could match replicas still running from an older revision, which keep that
 * revision's label (the label names the commit a replica was created from); the end check
 * compares the labels with the last good commit.
 */
export function nextGoodVariant(
  current: GoodVariant,
  change: 'image' | 'env',
  seen: Set<string>,
  counter: () => number,
): GoodVariant {
  let next: GoodVariant =
    change === 'image'
      ? { ...current, image: current.image === TEST_IMAGES.webV1 ? TEST_IMAGES.webV2 : TEST_IMAGES.webV1 }
      : { ...current, greeting: `g${counter()}` };
  while (seen.has(describeVariant(next))) next = { ...next, greeting: `g${counter()}` };
  seen.add(describeVariant(next));
  return next;
}
