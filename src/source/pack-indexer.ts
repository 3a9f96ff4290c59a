import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createInflate, crc32, inflateSync } from 'node:zlib';

import { BerthError } from '../core/errors.js';
import { applyDelta } from './git-delta.js';
import { parsePackEntryHeader, readVarint } from './git-object-size.js';

/**
 * Objects up to this size are inflated in memory to be hashed and to serve as delta bases; larger
 * ones are hashed while they stream through zlib, never held whole (16 MiB: far above any file
 * berth reads, far below what would threaten the operator's memory).
 */
export const MAX_INDEXED_OBJECT_BYTES = 16 * 1024 * 1024;

/** Memory kept for resolved delta bases while one pack is indexed. */
const BASE_CACHE_BYTES = 32 * 1024 * 1024;

const TYPE_NAMES: Record<number, 'commit' | 'tree' | 'blob' | 'tag'> = {
  1: 'commit',
  2: 'tree',
  3: 'blob',
  4: 'tag',
};
const OFS_DELTA = 6;
const REF_DELTA = 7;

export interface StoredObject {
  type: 'commit' | 'tree' | 'blob' | 'tag';
  object: Uint8Array;
}

interface Entry {
  offset: number;
  type: number;
  size: number;
  dataStart: number;
  end: number;
  baseOffset?: number;
  baseOid?: string;
  oid?: string;
}

/**
 * Thrown from the wrapped file system once the pack and its index are written: isomorphic-git
 * would otherwise index the pack itself, inflating every object whole in memory (a 2 GB blob of
 * zeros, a few MB on the wire, costs gigabytes). Everything else a fetch does (refs, shallow) is
 * done before the pack is written, so the fetch is complete when this is thrown.
 */
export class PackIndexedByBerth extends Error {
  constructor(readonly packPath: string) {
    super(`pack ${packPath} indexed by berth`);
  }
}

/**
 * node:fs for isomorphic-git's fetch, whose pack write is answered by writing the pack, then an
 * index built here in bounded memory, then throwing PackIndexedByBerth.
 */
export function fsIndexingPacks(readExternal: (oid: string) => Promise<StoredObject | undefined>): typeof fs {
  const indexed = new Set<string>();
  const promises = {
    ...fs.promises,
    writeFile: async (path: fs.PathLike, data: Uint8Array | string, options?: fs.WriteFileOptions) => {
      const name = String(path);
      if (!/[/\\]objects[/\\]pack[/\\]pack-[0-9a-f]{40}\.pack$/.test(name) || typeof data === 'string') {
        return fs.promises.writeFile(path, data, options);
      }
      // isomorphic-git retries a failed write once after creating its directory: the second call
      // must not index the pack again.
      if (!indexed.has(name)) {
        indexed.add(name);
        await fs.promises.writeFile(name, data);
        const idx = await indexPack(Buffer.from(data.buffer, data.byteOffset, data.byteLength), readExternal);
        await writeFile(name.replace(/\.pack$/, '.idx'), idx);
      }
      throw new PackIndexedByBerth(name);
    },
  };
  return { ...fs, promises } as typeof fs;
}

/**
 * A version 2 index of `pack`, built with memory bounded by MAX_INDEXED_OBJECT_BYTES and
 * BASE_CACHE_BYTES whatever the objects' sizes. A delta that rebuilds an object over the limit
 * cannot be resolved in bounded memory: the pack is refused.
 */
export async function indexPack(
  pack: Buffer,
  readExternal: (oid: string) => Promise<StoredObject | undefined>,
): Promise<Buffer> {
  if (pack.length < 32 || pack.toString('latin1', 0, 4) !== 'PACK') throw corrupt('no PACK header');
  const count = pack.readUInt32BE(8);
  const entries: Entry[] = [];
  const byOffset = new Map<number, Entry>();
  let offset = 12;
  const pause = eventLoopPause();
  for (let index = 0; index < count; index++) {
    await pause();
    const header = parsePackEntryHeader(pack.subarray(offset, offset + 64));
    if (header === undefined) throw corrupt(`entry at ${offset} has no header`);
    const entry: Entry = { offset, ...header, dataStart: offset + header.dataStart, end: 0 };
    if (header.baseOffset !== undefined) entry.baseOffset = offset - header.baseOffset;
    const name = TYPE_NAMES[header.type];
    if (name !== undefined && header.size > MAX_INDEXED_OBJECT_BYTES) {
      const streamed = await hashStreaming(pack, entry.dataStart, name, header.size);
      entry.oid = streamed.oid;
      entry.end = entry.dataStart + streamed.consumed;
    } else {
      const { buffer, engine } = inflateWithin(pack, entry.dataStart, MAX_INDEXED_OBJECT_BYTES);
      entry.end = entry.dataStart + engine.bytesWritten;
      if (name !== undefined) entry.oid = hashObject(name, buffer);
    }
    entries.push(entry);
    byOffset.set(offset, entry);
    offset = entry.end;
  }

  const resolver = new DeltaResolver(pack, byOffset, entries, readExternal);
  for (const entry of entries) {
    await pause();
    entry.oid ??= await resolver.oidOf(entry);
  }
  return writeIndex(pack, entries);
}

class DeltaResolver {
  private readonly cache = new Map<number, StoredObject>();
  private cachedBytes = 0;
  private readonly offsetByOid = new Map<string, number>();

  constructor(
    private readonly pack: Buffer,
    private readonly byOffset: Map<number, Entry>,
    entries: Entry[],
    private readonly readExternal: (oid: string) => Promise<StoredObject | undefined>,
  ) {
    for (const entry of entries) if (entry.oid !== undefined) this.offsetByOid.set(entry.oid, entry.offset);
  }

  async oidOf(entry: Entry): Promise<string> {
    const { type, object } = await this.resolve(entry, 0);
    const oid = hashObject(type, object);
    this.offsetByOid.set(oid, entry.offset);
    return oid;
  }

  private async resolve(entry: Entry, depth: number): Promise<StoredObject> {
    const cached = this.cache.get(entry.offset);
    if (cached !== undefined) return cached;
    if (depth > 4096) throw corrupt('delta chain too long');
    const data = inflateWithin(this.pack, entry.dataStart, MAX_INDEXED_OBJECT_BYTES).buffer;
    const name = TYPE_NAMES[entry.type];
    if (name !== undefined) return this.keep(entry.offset, { type: name, object: data });
    const resultSize = readVarint(data, readVarint(data, 0)?.next ?? data.length)?.value;
    if (resultSize === undefined || resultSize > MAX_INDEXED_OBJECT_BYTES) {
      throw new BerthError(
        'ERR_GIT_SOURCE',
        `the fetched pack rebuilds an object of ${resultSize ?? 'unknown'} bytes from a delta, over the ${MAX_INDEXED_OBJECT_BYTES}-byte limit for such objects; refused`,
        { data: { size: resultSize } },
      );
    }
    const base = await this.baseOf(entry, depth);
    return this.keep(entry.offset, { type: base.type, object: applyDelta(data, base.object) });
  }

  private async baseOf(entry: Entry, depth: number): Promise<StoredObject> {
    if (entry.type === OFS_DELTA) {
      const base = entry.baseOffset === undefined ? undefined : this.byOffset.get(entry.baseOffset);
      if (base === undefined) throw corrupt(`delta at ${entry.offset} has no base`);
      return this.resolve(base, depth + 1);
    }
    if (entry.type !== REF_DELTA || entry.baseOid === undefined) throw corrupt(`entry type ${entry.type}`);
    const inPack = this.offsetByOid.get(entry.baseOid);
    const base = inPack === undefined ? undefined : this.byOffset.get(inPack);
    if (base !== undefined) return this.resolve(base, depth + 1);
    const external = await this.readExternal(entry.baseOid);
    if (external === undefined)
      throw corrupt(`delta base ${entry.baseOid} is neither in the pack nor cached`);
    return external;
  }

  private keep(offset: number, object: StoredObject): StoredObject {
    if (object.object.byteLength > BASE_CACHE_BYTES / 4) return object;
    this.cache.set(offset, object);
    this.cachedBytes += object.object.byteLength;
    for (const [key, old] of this.cache) {
      if (this.cachedBytes <= BASE_CACHE_BYTES) break;
      this.cache.delete(key);
      this.cachedBytes -= old.object.byteLength;
    }
    return object;
  }
}

/** Inflates one entry's zlib stream (the pack's later bytes are ignored), refusing past `limit`. */
function inflateWithin(
  pack: Buffer,
  start: number,
  limit: number,
): { buffer: Buffer; engine: { bytesWritten: number } } {
  try {
    const result = inflateSync(pack.subarray(start), {
      info: true,
      maxOutputLength: limit + 1,
    }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    if (result.buffer.length > limit) throw corrupt(`entry at ${start} inflates past ${limit} bytes`);
    return result;
  } catch (error) {
    if (error instanceof BerthError) throw error;
    throw corrupt(
      `entry at ${start} does not inflate (${error instanceof Error ? error.message : String(error)})`,
    );
  }
}

/** SHA-1 of a large object computed while zlib streams it: memory bounded by zlib's chunks. */
async function hashStreaming(
  pack: Buffer,
  start: number,
  type: string,
  size: number,
): Promise<{ oid: string; consumed: number }> {
  const hash = createHash('sha1').update(`${type} ${size}\0`);
  const inflate = createInflate({ chunkSize: 256 * 1024 });
  let inflated = 0;
  await new Promise<void>((resolve, reject) => {
    inflate.on('data', (chunk: Buffer) => {
      inflated += chunk.length;
      if (inflated > size) {
        inflate.destroy(corrupt(`entry at ${start} inflates past its size ${size}`));
        return;
      }
      hash.update(chunk);
    });
    inflate.on('end', resolve);
    inflate.on('error', reject);
    inflate.end(pack.subarray(start));
  });
  if (inflated !== size) throw corrupt(`entry at ${start} inflates to ${inflated} bytes, not ${size}`);
  return { oid: hash.digest('hex'), consumed: inflate.bytesWritten };
}

function hashObject(type: string, object: Uint8Array): string {
  return createHash('sha1').update(`${type} ${object.byteLength}\0`).update(object).digest('hex');
}

/** Pack index version 2: fan-out, sorted ids, CRC-32 of each entry, offsets, checksums. */
function writeIndex(pack: Buffer, entries: Entry[]): Buffer {
  const sorted = [...entries].sort((a, b) => (a.oid! < b.oid! ? -1 : a.oid! > b.oid! ? 1 : 0));
  const count = sorted.length;
  const large = sorted.filter((entry) => entry.offset >= 0x80000000);
  const idx = Buffer.alloc(8 + 1024 + count * 28 + large.length * 8 + 40);
  idx.writeUInt32BE(0xff744f63, 0);
  idx.writeUInt32BE(2, 4);
  let position = 8 + 1024;
  for (const [index, entry] of sorted.entries()) {
    idx.write(entry.oid!, position + index * 20, 'hex');
  }
  const fanout = new Array<number>(256).fill(0);
  for (const entry of sorted) fanout[Number.parseInt(entry.oid!.slice(0, 2), 16)]! += 1;
  let running = 0;
  for (let byte = 0; byte < 256; byte++) {
    running += fanout[byte]!;
    idx.writeUInt32BE(running, 8 + byte * 4);
  }
  position += count * 20;
  for (const [index, entry] of sorted.entries()) {
    idx.writeUInt32BE(crc32(pack.subarray(entry.offset, entry.end)) >>> 0, position + index * 4);
  }
  position += count * 4;
  let largeIndex = 0;
  for (const [index, entry] of sorted.entries()) {
    if (entry.offset < 0x80000000) {
      idx.writeUInt32BE(entry.offset, position + index * 4);
    } else {
      idx.writeUInt32BE((0x80000000 | largeIndex) >>> 0, position + index * 4);
      idx.writeBigUInt64BE(BigInt(entry.offset), position + count * 4 + largeIndex * 8);
      largeIndex++;
    }
  }
  position += count * 4 + large.length * 8;
  pack.copy(idx, position, pack.length - 20);
  position += 20;
  createHash('sha1').update(idx.subarray(0, position)).digest().copy(idx, position);
  return idx;
}

/**
 * Lets other work run every 20 ms: a pack of thousands of objects takes seconds to index, and
 * the operator's heartbeats and API must not wait for it.
 */
function eventLoopPause(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < 20) return;
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

function corrupt(detail: string): BerthError {
  return new BerthError('ERR_GIT_SOURCE', `the fetched pack is corrupt or unsupported: ${detail}`, {
    data: { detail },
  });
}
