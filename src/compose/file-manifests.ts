/**
 * Top-level `configs:` and `secrets:` as berth Config and Secret manifests. A secret's content is
 * encrypted with age for the given recipients before it leaves this module: the plaintext is
 * never part of the output, and without a recipient a secret is refused.
 */
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { WrittenConfig, WrittenSecret } from '../manifests/types.js';
import { encryptToArmor } from '../secrets/age-payload.js';
import { isRecord } from './compose-project.js';
import { dnsLabelOf, type Conversion } from './conversion.js';
import type { FileReference } from './service-storage.js';

export interface FileManifests {
  configs: WrittenConfig[];
  secrets: WrittenSecret[];
  references: { configs: Map<string, FileReference>; secrets: Map<string, FileReference> };
}

/** Every declared entry is converted, used or not; a secret is encrypted for every recipient. */
export async function convertFileEntries(
  conv: Conversion,
  recipients: readonly string[],
  namespace: string | undefined,
): Promise<FileManifests> {
  const result: FileManifests = {
    configs: [],
    secrets: [],
    references: { configs: new Map(), secrets: new Map() },
  };
  const metadata = (name: string): WrittenConfig['metadata'] => ({
    name,
    ...(namespace === undefined ? {} : { namespace }),
  });
  for (const kind of ['configs', 'secrets'] as const) {
    const entries = conv.project.model[kind];
    if (!isRecord(entries)) continue;
    for (const [name, definition] of Object.entries(entries)) {
      const content = await contentOf(kind, name, definition, conv);
      if (content === null) continue;
      const manifestName = dnsLabelOf(name);
      const key = dataKeyOf(content.fileName ?? name);
      if (kind === 'configs') {
        result.configs.push({
          apiVersion: 'berth/v1',
          kind: 'Config',
          metadata: metadata(manifestName),
          data: { [key]: content.bytes.toString('utf8') },
        });
        result.references.configs.set(name, { name: manifestName, key });
        continue;
      }
      if (recipients.length === 0) {
        conv.fail(
          [kind, name],
          'a secret needs an age recipient: pass -r age1... (berth never writes a secret in plaintext)',
        );
        content.bytes.fill(0);
        continue;
      }
      const armored = await encryptToArmor(content.bytes, recipients);
      content.bytes.fill(0);
      result.secrets.push({
        apiVersion: 'berth/v1',
        kind: 'Secret',
        metadata: metadata(manifestName),
        data: { [key]: armored },
      });
      result.references.secrets.set(name, { name: manifestName, key });
    }
  }
  return result;
}

async function contentOf(
  kind: 'configs' | 'secrets',
  name: string,
  definition: unknown,
  conv: Conversion,
): Promise<{ bytes: Buffer; fileName?: string } | null> {
  const at = [kind, name];
  if (!isRecord(definition)) {
    conv.fail(at, 'must be a mapping with file, content or environment');
    return null;
  }
  if (definition['external'] === true) {
    conv.warn(
      at,
      `external ${kind} live in a Swarm or elsewhere; berth cannot read them: create the ${kind === 'configs' ? 'Config' : 'Secret'} manifest yourself`,
    );
    return null;
  }
  if (typeof definition['file'] === 'string') {
    const path = resolve(conv.project.dir, definition['file']);
    try {
      return { bytes: await readFile(path), fileName: basename(path) };
    } catch (error) {
      conv.fail(
        [...at, 'file'],
        `cannot read ${definition['file']}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
      return null;
    }
  }
  if (typeof definition['content'] === 'string') return { bytes: Buffer.from(definition['content']) };
  if (typeof definition['environment'] === 'string') {
    const value = conv.project.lookup(definition['environment']);
    if (value === undefined) {
      conv.fail([...at, 'environment'], `variable ${definition['environment']} is not set`);
      return null;
    }
    return { bytes: Buffer.from(value) };
  }
  conv.fail(at, 'needs file, content or environment');
  return null;
}

/** A Config/Secret key: the file name, with characters outside [A-Za-z0-9._-] as `_`. */
function dataKeyOf(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_') || 'value';
}
