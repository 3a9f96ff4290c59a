import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestFraming, type RequestFraming } from './http-framing.js';

/** Heads as Node hands them over: what its strict parser let through, blanks around values stripped. */
const cases: [string, string, string[], RequestFraming][] = [
  ['no body', '1.1', ['Host', 'x'], { kind: 'none' }],
  ['HTTP/1.0 without Host', '1.0', [], { kind: 'none' }],
  ['Content-Length', '1.1', ['Host', 'x', 'Content-Length', '42'], { kind: 'length', length: 42 }],
  [
    'Content-Length with leading zeros',
    '1.1',
    ['Host', 'x', 'content-length', '007'],
    { kind: 'length', length: 7 },
  ],
  ['chunked', '1.1', ['Host', 'x', 'Transfer-Encoding', 'chunked'], { kind: 'chunked' }],
  ['no Host', '1.1', [], { kind: 'ambiguous', reason: 'no Host header' }],
  [
    'two Hosts',
    '1.1',
    ['Host', 'x', 'host', 'y'],
    { kind: 'ambiguous', reason: 'more than one Host header' },
  ],
  [
    'TE and CL',
    '1.1',
    ['Host', 'x', 'Transfer-Encoding', 'chunked', 'Content-Length', '3'],
    { kind: 'ambiguous', reason: 'both Transfer-Encoding and Content-Length' },
  ],
  [
    'TE x then chunked (llhttp reads it as chunked)',
    '1.1',
    ['Host', 'x', 'Transfer-Encoding', 'x', 'Transfer-encoding', 'chunked'],
    { kind: 'ambiguous', reason: 'more than one Transfer-Encoding header' },
  ],
  [
    'a coding before chunked (llhttp reads it as chunked)',
    '1.1',
    ['Host', 'x', 'Transfer-Encoding', 'gzip, chunked'],
    { kind: 'ambiguous', reason: 'Transfer-Encoding other than chunked' },
  ],
  [
    'another spelling',
    '1.1',
    ['Host', 'x', 'Transfer-Encoding', 'CHUNKED'],
    { kind: 'ambiguous', reason: 'Transfer-Encoding other than chunked' },
  ],
  [
    'an empty TE',
    '1.1',
    ['Host', 'x', 'Transfer-Encoding', ''],
    { kind: 'ambiguous', reason: 'Transfer-Encoding other than chunked' },
  ],
  [
    'TE in HTTP/1.0',
    '1.0',
    ['Host', 'x', 'Transfer-Encoding', 'chunked'],
    { kind: 'ambiguous', reason: 'Transfer-Encoding in an HTTP/1.0 request' },
  ],
  [
    'two CLs',
    '1.1',
    ['Host', 'x', 'Content-Length', '3', 'Content-Length', '3'],
    { kind: 'ambiguous', reason: 'more than one Content-Length header' },
  ],
  ...['-1', '+3', '0x3', '3, 3', '', '1e3', '9007199254740993'].map(
    (value): [string, string, string[], RequestFraming] => [
      `Content-Length ${JSON.stringify(value)}`,
      '1.1',
      ['Host', 'x', 'Content-Length', value],
      { kind: 'ambiguous', reason: 'invalid Content-Length' },
    ],
  ),
];

for (const [name, version, rawHeaders, expected] of cases)
  test(`request framing: ${name}`, () => assert.deepEqual(requestFraming(version, rawHeaders), expected));
