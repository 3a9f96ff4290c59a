import type { PlacementConstraint } from './types.js';

/**
 * Swarm's placement constraint syntax, restricted to what berth can check from a node snapshot:
 * `node.labels.KEY`, `node.name` and `node.hostname`, compared with == or !=. The schema's pattern
 * for `placement.constraints` accepts exactly these strings.
 */
const CONSTRAINT = /^\s*(node\.(?:labels\.[A-Za-z0-9._/-]+|name|hostname))\s*(==|!=)\s*([^\s=!]+)\s*$/;

export function parsePlacementConstraint(text: string): PlacementConstraint | null {
  const match = CONSTRAINT.exec(text);
  if (match === null) return null;
  const [, field, op, value] = match;
  if (field === undefined || value === undefined || (op !== '==' && op !== '!=')) return null;
  return { field, op, value };
}
