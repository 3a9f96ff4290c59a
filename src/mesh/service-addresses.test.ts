import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { ServiceAddressBook, parseServiceRange } from './service-addresses.js';

describe('service addresses', () => {
  test('a range gives its first address to DNS and the rest to services', () => {
    const range = parseServiceRange('10.234.0.0/16');
    assert.equal(range.dns, '10.234.0.1');
    assert.equal(range.cidr, '10.234.0.0/16');
    const book = new ServiceAddressBook(range);
    const web = book.assign('shop/web');
    assert.match(web, /^10\.234\.\d+\.\d+$/);
    assert.notEqual(web, '10.234.0.1');
    assert.equal(book.assign('shop/web'), web, 'a service keeps its address');
    assert.equal(book.lookup('shop/web'), web);
    assert.equal(book.lookup('shop/api'), null);
  });

  test('the same name gets the same address in a new book; a full range says so', () => {
    const range = parseServiceRange('10.9.8.0/29'); // 6 usable: DNS + 5 services
    const first = new ServiceAddressBook(range);
    const names = ['a/one', 'a/two', 'a/three', 'b/one', 'b/two'];
    const addresses = names.map((n) => first.assign(n));
    assert.equal(new Set(addresses).size, 5, 'no two services share an address');
    for (const address of addresses) assert.ok(!['10.9.8.0', '10.9.8.1', '10.9.8.7'].includes(address));
    const again = new ServiceAddressBook(range);
    assert.deepEqual(
      names.map((n) => again.assign(n)),
      addresses,
    );
    assert.throws(
      () => first.assign('c/six'),
      (e: unknown) => e instanceof BerthError && /no service address left in 10\.9\.8\.0\/29/.test(e.message),
    );
    first.release('a/two');
    assert.equal(first.assign('c/six'), addresses[1], 'a released address is handed out again');
  });

  test('bad ranges are refused with the reason', () => {
    assert.throws(() => parseServiceRange('10.234.0.0'), /IPv4 range/);
    assert.throws(() => parseServiceRange('10.234.0.300/16'), /IPv4 range/);
    assert.throws(() => parseServiceRange('10.0.0.0/31'), /IPv4 range/);
    assert.throws(() => parseServiceRange('10.234.1.0/16'), /did you mean 10\.234\.0\.0\/16/);
  });
});
