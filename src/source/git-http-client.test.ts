import assert from 'node:assert/strict';
import { test } from 'node:test';

import { requestThinPack } from './git-http-client.js';

function pktLine(text: string): string {
  return (text.length + 4).toString(16).padStart(4, '0') + text;
}

void test('requestThinPack adds thin-pack to the capabilities of the first want line', () => {
  const oid = 'a'.repeat(40);
  const body = Buffer.from(
    pktLine(`want ${oid} multi_ack_detailed side-band-64k ofs-delta\n`) +
      pktLine('deepen 1\n') +
      '0000' +
      pktLine('done\n'),
    'latin1',
  );
  const rewritten = requestThinPack(body).toString('latin1');
  assert.equal(
    rewritten,
    pktLine(`want ${oid} multi_ack_detailed side-band-64k ofs-delta thin-pack\n`) +
      pktLine('deepen 1\n') +
      '0000' +
      pktLine('done\n'),
  );
});

void test('requestThinPack leaves anything else alone', () => {
  const already = Buffer.from(pktLine(`want ${'b'.repeat(40)} thin-pack ofs-delta\n`) + '0000', 'latin1');
  assert.equal(requestThinPack(already), already);
  const protocolV2 = Buffer.from(pktLine('command=fetch\n') + '0001' + '0000', 'latin1');
  assert.equal(requestThinPack(protocolV2), protocolV2);
  const garbage = Buffer.from('zzzz', 'latin1');
  assert.equal(requestThinPack(garbage), garbage);
  const truncated = Buffer.from('00ffwant', 'latin1');
  assert.equal(requestThinPack(truncated), truncated);
});
