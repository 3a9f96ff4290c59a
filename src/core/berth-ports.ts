/**
 * The TCP ports berth itself listens on. The routing mesh serves a Service's published port on
 * every node, so a Service publishing one of these would collide with berth's own listener on some
 * node (or take its place): manifests cannot publish them.
 */

/** The port `berth run --cluster-listen` uses when only a host is given (Swarm's is 2377). */
export const DEFAULT_CLUSTER_PORT = 7946;

/** The port `berth agent` listens on by default. */
export const DEFAULT_AGENT_PORT = 7947;

/** A port berth listens on, and what listens there (for the message that refuses it). */
export interface BerthPort {
  port: number;
  use: string;
}

/** What berth listens on unless told otherwise; refused when manifests are validated. */
export const BERTH_DEFAULT_PORTS: readonly BerthPort[] = Object.freeze([
  { port: DEFAULT_CLUSTER_PORT, use: "berth's default cluster port (berth run --cluster-listen)" },
  { port: DEFAULT_AGENT_PORT, use: "the berth agent's default API port (berth agent --listen)" },
]);
