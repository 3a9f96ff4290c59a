import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  redactCredentials,
  rememberCredential,
  splitUrlCredential,
  withoutCredential,
} from './url-credential.js';

void test('splitUrlCredential takes the credential out of an http(s) URL, decoded', () => {
  assert.deepEqual(splitUrlCredential('https://bot:t%40ken-1234@git.example.com/team/app.git'), {
    url: 'https://git.example.com/team/app.git',
    credential: { username: 'bot', password: 't@ken-1234' },
  });
  assert.deepEqual(splitUrlCredential('http://127.0.0.1:8080/app.git'), {
    url: 'http://127.0.0.1:8080/app.git',
    credential: undefined,
  });
  assert.deepEqual(splitUrlCredential('/srv/git/app.git'), {
    url: '/srv/git/app.git',
    credential: undefined,
  });
  assert.equal(withoutCredential('HTTPS://only-user@host/x.git'), 'https://host/x.git');
});

void test('redactCredentials removes URL userinfo anywhere in a text', () => {
  assert.equal(
    redactCredentials('GET http://u:p@h:1/x.git failed; see https://other:pw@example.com/a'),
    'GET http://h:1/x.git failed; see https://example.com/a',
  );
  assert.equal(redactCredentials('"repo":"http://a:b@h/x"'), '"repo":"http://h/x"');
  assert.equal(
    redactCredentials('git@github.com:team/app.git and mail me@host'),
    'git@github.com:team/app.git and mail me@host',
  );
});

void test('a credential once seen is scrubbed in every form it can take in text', () => {
  splitUrlCredential('https://alice:url%2Fsecret-77@host/x.git');
  rememberCredential({ username: 'git', password: 'env-token-4242' });
  const authorization = Buffer.from('alice:url/secret-77').toString('base64');
  const text = [
    'url/secret-77',
    'url%2Fsecret-77',
    `Basic ${authorization}`,
    Buffer.from('git:env-token-4242').toString('base64'),
    'token=env-token-4242;',
  ].join(' ');
  assert.equal(
    redactCredentials(text),
    '[redacted] [redacted] Basic [redacted] [redacted] token=[redacted];',
  );
});

void test('passwords too short to scrub safely are left to the credential-free URL', () => {
  splitUrlCredential('https://bob:abc@host/x.git');
  assert.equal(redactCredentials('abc is a word'), 'abc is a word');
});
