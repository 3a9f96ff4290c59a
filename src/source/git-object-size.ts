import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as zlibConstants, inflateSync } from 'node:zlib';

/**
 * The size of a git object, learnt from its header without inflating the object: isomorphic-git
 * learns a size only by inflating the whole object into memory, so a 2 GB blob of zeros (a few MB
 * once packed) would cost gigabytes before any limit could be checked.
 *
 * - loose object: the zlib stream starts with "<type> <size>\0"; only its first bytes are inflated.
 * - packed object: the pack entry header carries the size; for a delta, the delta's own header
 *   (the first bytes of its inflated data) carries the size of the object it rebuilds.
 */
export interface GitObjectHeader {
  type: 'commit' | 'tree' | 'blob' | 'tag' | 'delta';
  /** Bytes of the object's content once inflated (for a delta: of the object it rebuilds). */
  size: number;
}

const PACK_TYPES: Record<number, GitObjectHeader['type']> = {
  1: 'commit',
  2: 'tree',
  3: 'blob',
  4: 'tag',
  6: 'delta',
  7: 'delta',
};
const OFS_DELTA = 6;
const REF_DELTA = 7;

/**
 * Compressed bytes inflated to find a header: enough for a zlib stream's dynamic Huffman tables
 * and a few dozen bytes of output. Deflate expands at most ~1032x, so the output stays below a few
 * MB even for a crafted stream.
 */
const HEADER_PROBES = [512, 4096] as const;

interface PackIndex {
  packPath: string;
  idx: Buffer;
  count: number;
}

/** Reads object headers of one git dir. Pack indexes are kept once read; new packs are noticed. */
export class GitObjectSizes {
  private indexes = new Map<string, PackIndex>();

  constructor(private readonly gitdir: string) {}

  /** The object's type and size, or undefined when it is not in this git dir. */
  async headerOf(oid: string): Promise<GitObjectHeader | undefined> {
    return (await this.looseHeader(oid)) ?? (await this.packedHeader(oid));
  }

  private async looseHeader(oid: string): Promise<GitObjectHeader | undefined> {
    const path = join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
    let handle;
    try {
      handle = await open(path, 'r');
    } catch {
      return undefined;
    }
    try {
      for (const probe of HEADER_PROBES) {
        const buffer = Buffer.alloc(probe);
        const { bytesRead } = await handle.read(buffer, 0, probe, 0);
        const head = inflatePrefix(buffer.subarray(0, bytesRead));
        const nul = head.indexOf(0);
        if (nul === -1) continue;
        const match = /^(commit|tree|blob|tag) (\d+)$/.exec(head.subarray(0, nul).toString('latin1'));
        if (match?.[1] === undefined || match[2] === undefined) return undefined;
        return { type: match[1] as GitObjectHeader['type'], size: Number(match[2]) };
      }
      return undefined;
    } finally {
      await handle.close();
    }
  }

  private async packedHeader(oid: string): Promise<GitObjectHeader | undefined> {
    for (const index of await this.packIndexes()) {
      const offset = offsetInIndex(index, oid);
      if (offset !== undefined) return readPackEntryHeader(index.packPath, offset);
    }
    return undefined;
  }

  private async packIndexes(): Promise<PackIndex[]> {
    const packDir = join(this.gitdir, 'objects', 'pack');
    const names = (await readdir(packDir).catch(() => [] as string[])).filter((name) =>
      name.endsWith('.idx'),
    );
    const next = new Map<string, PackIndex>();
    for (const name of names) {
      const known = this.indexes.get(name);
      if (known !== undefined) {
        next.set(name, known);
        continue;
      }
      const idx = await readFile(join(packDir, name)).catch(() => undefined);
      // Version 2 only, as isomorphic-git (the reader this guards) supports no other.
      if (idx === undefined || idx.length < 8 + 1024 || idx.readUInt32BE(0) !== 0xff744f63) continue;
      if (idx.readUInt32BE(4) !== 2) continue;
      const count = idx.readUInt32BE(8 + 255 * 4);
      next.set(name, { packPath: join(packDir, name.replace(/\.idx$/, '.pack')), idx, count });
    }
    this.indexes = next;
    return [...next.values()];
  }
}

/** Binary search of a v2 pack index (fan-out table, sorted ids, CRCs, 32-bit then 64-bit offsets). */
function offsetInIndex(index: PackIndex, oid: string): number | undefined {
  const wanted = Buffer.from(oid, 'hex');
  if (wanted.length !== 20) return undefined;
  const { idx, count } = index;
  const firstByte = wanted[0] ?? 0;
  let low = firstByte === 0 ? 0 : idx.readUInt32BE(8 + (firstByte - 1) * 4);
  let high = idx.readUInt32BE(8 + firstByte * 4);
  const idsStart = 8 + 256 * 4;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const order = wanted.compare(idx, idsStart + middle * 20, idsStart + middle * 20 + 20);
    if (order === 0) {
      const offsetsStart = idsStart + count * 24;
      const small = idx.readUInt32BE(offsetsStart + middle * 4);
      if ((small & 0x80000000) === 0) return small;
      const large = offsetsStart + count * 4 + (small & 0x7fffffff) * 8;
      return Number(idx.readBigUInt64BE(large));
    }
    if (order < 0) high = middle;
    else low = middle + 1;
  }
  return undefined;
}

async function readPackEntryHeader(packPath: string, offset: number): Promise<GitObjectHeader | undefined> {
  const handle = await open(packPath, 'r');
  try {
    const head = Buffer.alloc(64);
    const { bytesRead } = await handle.read(head, 0, head.length, offset);
    const entry = parsePackEntryHeader(head.subarray(0, bytesRead));
    if (entry === undefined) return undefined;
    if (entry.type !== OFS_DELTA && entry.type !== REF_DELTA) {
      const type = PACK_TYPES[entry.type];
      return type === undefined ? undefined : { type, size: entry.size };
    }
    for (const probe of HEADER_PROBES) {
      const compressed = Buffer.alloc(probe);
      const read = await handle.read(compressed, 0, probe, offset + entry.dataStart);
      const delta = inflatePrefix(compressed.subarray(0, read.bytesRead));
      // A delta starts with two varints: the size of its base, then of the object it rebuilds.
      const base = readVarint(delta, 0);
      const result = base === undefined ? undefined : readVarint(delta, base.next);
      if (result !== undefined) return { type: 'delta', size: result.value };
    }
    return undefined;
  } finally {
    await handle.close();
  }
}

/** Type, size, and where the zlib data starts (past a delta's base reference). */
export function parsePackEntryHeader(
  bytes: Buffer,
): { type: number; size: number; dataStart: number; baseOffset?: number; baseOid?: string } | undefined {
  let position = 0;
  let byte = bytes[position++];
  if (byte === undefined) return undefined;
  const type = (byte >> 4) & 7;
  let size = byte & 15;
  let scale = 16;
  while ((byte & 0x80) !== 0) {
    byte = bytes[position++];
    if (byte === undefined) return undefined;
    size += (byte & 0x7f) * scale;
    scale *= 128;
  }
  if (type === OFS_DELTA) {
    byte = bytes[position++];
    if (byte === undefined) return undefined;
    let distance = byte & 0x7f;
    while ((byte & 0x80) !== 0) {
      byte = bytes[position++];
      if (byte === undefined) return undefined;
      distance = (distance + 1) * 128 + (byte & 0x7f);
    }
    return { type, size, dataStart: position, baseOffset: distance };
  }
  if (type === REF_DELTA) {
    if (bytes.length < position + 20) return undefined;
    const baseOid = bytes.subarray(position, position + 20).toString('hex');
    return { type, size, dataStart: position + 20, baseOid };
  }
  return { type, size, dataStart: position };
}

/** Little-endian base-128 varint as in a delta header. */
export function readVarint(bytes: Uint8Array, start: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let position = start; position < bytes.length; position++) {
    const byte = bytes[position] ?? 0;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return { value, next: position + 1 };
  }
  return undefined;
}

/** Inflates what a truncated zlib stream holds, without failing on its missing end. */
function inflatePrefix(compressed: Buffer): Buffer {
  try {
    return inflateSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch {
    return Buffer.alloc(0);
  }
}
