import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InspectCache } from './inspect-cache.js';
import type { RuntimeContainer } from './runtime.js';

const web: RuntimeContainer = {
  id: 'c1',
  name: 'web-1',
  image: 'busybox',
  labels: {},
  state: 'running',
  exitCode: null,
  oomKilled: false,
  error: null,
  restartCount: 0,
  createdAt: '2026-01-01T00:00:00Z',
  startedAt: '2026-01-01T00:00:01Z',
  finishedAt: null,
  ports: [],
};
const listed = { id: 'c1', names: ['/web-1'], state: 'running' };

function cacheHolding(container: RuntimeContainer): InspectCache {
  const cache = new InspectCache();
  cache.streamOpened();
  cache.keep(container, cache.mark());
  return cache;
}

describe('cached inspections', () => {
  test('are reused while the stream is open and the list shows the same container', () => {
    assert.equal(cacheHolding(web).reuse(listed), web);
  });

  test('are not kept without an open event stream', () => {
    const cache = new InspectCache();
    cache.keep(web, cache.mark());
    assert.equal(cache.reuse(listed), undefined);
  });

  test('are forgotten at an event, a change by berth, or a broken stream', () => {
    const evented = cacheHolding(web);
    evented.forget();
    assert.equal(evented.reuse(listed), undefined);
    const broken = cacheHolding(web);
    broken.streamClosed();
    assert.equal(broken.reuse(listed), undefined);
  });

  test('an inspection under way when an event came is not kept', () => {
    const cache = new InspectCache();
    cache.streamOpened();
    const mark = cache.mark();
    cache.forget();
    cache.keep(web, mark);
    assert.equal(cache.reuse(listed), undefined);
  });

  test('a listed state or name other than the cached one is inspected again', () => {
    assert.equal(cacheHolding(web).reuse({ ...listed, state: 'paused' }), undefined);
    assert.equal(cacheHolding(web).reuse({ ...listed, names: ['/renamed'] }), undefined);
  });

  test('what the list no longer shows is dropped', () => {
    const cache = cacheHolding(web);
    cache.retainOnly(new Set());
    assert.equal(cache.reuse(listed), undefined);
  });
});
