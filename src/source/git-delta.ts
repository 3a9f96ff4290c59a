import { BerthError } from '../core/errors.js';
import { readVarint } from './git-object-size.js';

/**
 * Rebuilds an object from a git delta and its base. The delta states the size of what it builds;
 * the caller checks it before calling (see pack-indexer.ts), so the output is allocated once.
 */
export function applyDelta(delta: Uint8Array, base: Uint8Array): Uint8Array {
  const baseSize = readVarint(delta, 0);
  const resultSize = baseSize === undefined ? undefined : readVarint(delta, baseSize.next);
  if (baseSize === undefined || resultSize === undefined || baseSize.value !== base.byteLength) {
    throw badDelta('its header does not match its base');
  }
  const result = new Uint8Array(resultSize.value);
  let written = 0;
  let position = resultSize.next;
  while (position < delta.length) {
    const op = delta[position++]!;
    if ((op & 0x80) !== 0) {
      let offset = 0;
      let size = 0;
      for (let bit = 0; bit < 4; bit++) {
        if ((op & (1 << bit)) !== 0) offset += (delta[position++] ?? 0) * 2 ** (8 * bit);
      }
      for (let bit = 0; bit < 3; bit++) {
        if ((op & (0x10 << bit)) !== 0) size += (delta[position++] ?? 0) * 2 ** (8 * bit);
      }
      if (size === 0) size = 0x10000;
      if (offset + size > base.byteLength || written + size > result.length)
        throw badDelta('a copy overruns');
      result.set(base.subarray(offset, offset + size), written);
      written += size;
    } else if (op !== 0) {
      if (position + op > delta.length || written + op > result.length) throw badDelta('an insert overruns');
      result.set(delta.subarray(position, position + op), written);
      written += op;
      position += op;
    } else {
      throw badDelta('it holds a reserved instruction');
    }
  }
  if (written !== result.length) throw badDelta('it builds fewer bytes than it says');
  return result;
}

function badDelta(reason: string): BerthError {
  return new BerthError('ERR_GIT_SOURCE', `the fetched pack holds a corrupt delta: ${reason}`, {
    data: { reason },
  });
}
