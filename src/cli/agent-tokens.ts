/**
 * Which token goes with which `--agent`: every agent has its own (`berth agent` prints it), so
 * one leaked token drives one node, not all. In order of precedence:
 *
 *   --agent-token TOKEN        repeatable: the first with the first --agent, and so on
 *   --agent-token-file FILE    (or BERTH_AGENT_TOKEN_FILE) lines `URL TOKEN`; `#` comments
 *   BERTH_AGENT_TOKEN          with a single --agent only
 */
import { readFile } from 'node:fs/promises';
import { BerthError } from '../core/errors.js';

export interface AgentTokenSources {
  agents: readonly string[];
  tokens: readonly string[];
  tokenFile: string | undefined;
  /** BERTH_AGENT_TOKEN. */
  envToken: string | undefined;
}

export interface AgentWithToken {
  url: string;
  token: string;
}

const sameUrl = (url: string): string => url.replace(/\/+$/, '');

/** The `URL TOKEN` lines of a token file, by URL. */
export function parseAgentTokenFile(text: string, path: string): Map<string, string> {
  const tokens = new Map<string, string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `${path}:${index + 1}: expected "URL TOKEN" (an agent's URL and the token it printed), got ${fields.length} field(s)`,
      );
    }
    tokens.set(sameUrl(fields[0]!), fields[1]!);
  });
  return tokens;
}

/** Each --agent URL with its token; refuses a missing token, or one token for several agents. */
export function pairAgentTokens(
  sources: AgentTokenSources,
  fileTokens: Map<string, string> | null,
): AgentWithToken[] {
  const { agents, tokens } = sources;
  if (tokens.length > 0) {
    if (tokens.length !== agents.length) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `give one --agent-token per --agent, in the same order (each agent has its own): got ${agents.length} --agent and ${tokens.length} --agent-token`,
      );
    }
    return agents.map((url, i) => ({ url, token: tokens[i]! }));
  }
  if (fileTokens !== null) {
    return agents.map((url) => {
      const token = fileTokens.get(sameUrl(url));
      if (token === undefined) {
        throw new BerthError(
          'ERR_AGENT_UNAUTHORIZED',
          `${sources.tokenFile} has no token for the agent ${url}`,
        );
      }
      return { url, token };
    });
  }
  const envToken = sources.envToken === '' ? undefined : sources.envToken;
  if (envToken !== undefined && agents.length === 1) return [{ url: agents[0]!, token: envToken }];
  if (envToken !== undefined) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `BERTH_AGENT_TOKEN is one token, but each of the ${agents.length} agents has its own: give one --agent-token per --agent, or --agent-token-file FILE with lines "URL TOKEN"`,
    );
  }
  throw new BerthError(
    'ERR_AGENT_UNAUTHORIZED',
    '--agent needs the token its agent printed: --agent-token TOKEN (one per --agent, in order), --agent-token-file FILE (or BERTH_AGENT_TOKEN_FILE) with lines "URL TOKEN", or BERTH_AGENT_TOKEN for a single agent',
  );
}

/** Reads the token file, if any, and pairs. */
export async function agentTokens(sources: AgentTokenSources): Promise<AgentWithToken[]> {
  const useFile = sources.tokens.length === 0 && sources.tokenFile !== undefined && sources.tokenFile !== '';
  if (!useFile) return pairAgentTokens(sources, null);
  const path = sources.tokenFile!;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new BerthError(
      'ERR_BAD_REQUEST',
      `cannot read the agent token file ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return pairAgentTokens(sources, parseAgentTokenFile(text, path));
}
