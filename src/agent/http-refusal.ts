import type { WireError } from '../core/errors.js';

/**
 * A request the agent's HTTP layer refuses before any agent call: a status other than the one
 * its error code maps to (413, 415), with the usual `{ code, message }` body.
 */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly wire: WireError,
  ) {
    super(wire.message);
    this.name = 'HttpRefusal';
  }
}
