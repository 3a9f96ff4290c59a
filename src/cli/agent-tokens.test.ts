import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError } from '../core/errors.js';
import { pairAgentTokens, parseAgentTokenFile, type AgentTokenSources } from './agent-tokens.js';

const A = 'https://node-a:7947';
const B = 'https://node-b:7947';
const sources = (overrides: Partial<AgentTokenSources>): AgentTokenSources => ({
  agents: [A, B],
  tokens: [],
  tokenFile: undefined,
  envToken: undefined,
  ...overrides,
});
const refused = (code: string, pattern: RegExp) => (e: unknown) =>
  e instanceof BerthError && e.code === code && pattern.test(e.message);

describe('one token per agent', () => {
  test('--agent-token pairs with --agent in order', () => {
    assert.deepEqual(pairAgentTokens(sources({ tokens: ['ta', 'tb'], envToken: 'ignored' }), null), [
      { url: A, token: 'ta' },
      { url: B, token: 'tb' },
    ]);
  });

  test('as many --agent-token as --agent, or it is refused', () => {
    assert.throws(
      () => pairAgentTokens(sources({ tokens: ['ta'] }), null),
      refused('ERR_BAD_REQUEST', /one --agent-token per --agent.*got 2 --agent and 1 --agent-token/),
    );
  });

  test('a token file gives each URL its token (trailing slashes aside); comments and blank lines skipped', () => {
    const file = parseAgentTokenFile(`# agents\n\n${A}/ ta\n  ${B}\ttb  \n`, 'tokens');
    assert.deepEqual(pairAgentTokens(sources({ tokenFile: 'tokens' }), file), [
      { url: A, token: 'ta' },
      { url: B, token: 'tb' },
    ]);
    assert.throws(
      () => pairAgentTokens(sources({ tokenFile: 'tokens' }), parseAgentTokenFile(`${A} ta\n`, 'tokens')),
      refused('ERR_AGENT_UNAUTHORIZED', /tokens has no token for the agent https:\/\/node-b:7947/),
    );
    assert.throws(
      () => parseAgentTokenFile(`${A}\n`, 'tokens'),
      refused('ERR_BAD_REQUEST', /^tokens:1: expected "URL TOKEN"/),
    );
  });

  test('BERTH_AGENT_TOKEN serves a single agent, never several', () => {
    assert.deepEqual(pairAgentTokens(sources({ agents: [A], envToken: 't' }), null), [
      { url: A, token: 't' },
    ]);
    assert.throws(
      () => pairAgentTokens(sources({ envToken: 't' }), null),
      refused(
        'ERR_AGENT_UNAUTHORIZED',
        /BERTH_AGENT_TOKEN is one token, but each of the 2 agents has its own/,
      ),
    );
  });

  test('no token at all says where tokens come from', () => {
    assert.throws(
      () => pairAgentTokens(sources({ agents: [A], envToken: '' }), null),
      refused('ERR_AGENT_UNAUTHORIZED', /--agent-token TOKEN.*--agent-token-file FILE/),
    );
  });
});
