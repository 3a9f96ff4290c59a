import { DEFAULT_NAMESPACE } from './defaults.js';
import type { FieldPath } from './field-path.js';
import { isManifestPath, type ManifestFile } from './manifest-files.js';
import { parseManifestFile } from './parse.js';
import type { ManifestKind, SourceLocation } from './types.js';

/**
 * Where a field of one manifest was written, for a problem found after loading (normalised specs
 * keep no positions). Null when no file holds that manifest. Pure; parses the files again.
 */
export function locateManifestField(
  files: readonly ManifestFile[],
  manifest: { kind: ManifestKind; namespace: string; name: string },
  path: FieldPath,
): SourceLocation | null {
  for (const file of files) {
    if (!isManifestPath(file.path)) continue;
    for (const document of parseManifestFile(file, Number.POSITIVE_INFINITY).documents) {
      const value = document.value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      if (value?.kind !== manifest.kind || value.metadata?.name !== manifest.name) continue;
      if ((value.metadata.namespace ?? DEFAULT_NAMESPACE) !== manifest.namespace) continue;
      return { file: document.file, ...document.locate(path, 'value') };
    }
  }
  return null;
}
