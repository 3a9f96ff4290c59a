import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createNameLock } from './name-lock.js';

describe('name lock', () => {
  test('operations on one name run one at a time, in order, and a failure does not block the next', async () => {
    const lock = createNameLock();
    const log: string[] = [];
    let release = () => {};
    const first = lock.exclusively('a', async () => {
      log.push('first start');
      await new Promise<void>((resolve) => (release = resolve));
      log.push('first end');
      throw new Error('first failed');
    });
    const second = lock.exclusively('a', async () => {
      log.push('second');
      return 2;
    });
    const other = lock.exclusively('b', async () => {
      log.push('other name');
      return 'b';
    });
    assert.equal(await other, 'b');
    assert.deepEqual(log, ['first start', 'other name']);
    release();
    await assert.rejects(first, /first failed/);
    assert.equal(await second, 2);
    assert.deepEqual(log, ['first start', 'other name', 'first end', 'second']);
  });

  test('a name is forgotten once nothing is queued on it', async () => {
    const lock = createNameLock();
    await lock.exclusively('a', async () => undefined);
    await lock.exclusively('b', async () => Promise.reject(new Error('no'))).catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lock.held(), 0);
  });
});
