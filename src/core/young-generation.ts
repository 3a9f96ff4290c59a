import { setFlagsFromString } from 'node:v8';

/**
 * V8 grows the young generation up to 16 MiB a semi-space (32 MiB resident) after a burst of
 * allocation (a reconcile, a snapshot of 100 containers) and keeps it while the process idles:
 * a third of an idle operator's memory. A long-lived process (`berth run`, `agent`, `mesh-host`)
 * keeps its first 1 MiB semi-spaces; more, cheap scavenges during a burst are the price. Only the
 * growth can be set once V8 runs (--max-semi-space-size is read at start), and the old generation
 * keeps its default limit, so a large repository or a log burst has what it had.
 */
const SMALL_YOUNG_GENERATION = '--semi-space-growth-factor=1';

let small = false;

export function keepYoungGenerationSmall(): void {
  small = true;
  setFlagsFromString(SMALL_YOUNG_GENERATION);
}

/** Starting a worker thread sets V8's flags back to the command line's: called once one is online. */
export function restoreYoungGenerationLimit(): void {
  if (small) setFlagsFromString(SMALL_YOUNG_GENERATION);
}
