// What the state writers do when the disk refuses writes (state-failures.test.ts): each scenario
// makes some state, breaks the file system (`broken`), tries changes, repairs it (`repaired`),
// changes again, and reports what memory and a fresh reload from disk hold at each step.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { createCertificateAuthority, generateKeyPair } from '../../src/cluster/certificates.js';
import { NodeRegistry } from '../../src/cluster/node-registry.js';
import { StateStore, type HistoryEntry, type OperatorState } from '../../src/operator/state-store.js';

export interface FileSystemFault {
  broken(): Promise<void>;
  repaired(): Promise<void>;
}

export interface WriteFailure {
  code: string | undefined;
  cause: string | null;
  message: string;
}

export interface NodeRow {
  name: string;
  availability: string;
  certificateNotAfter: string | null;
}

function failureOf(error: unknown): WriteFailure {
  const e = error as { code?: string; message?: string; data?: { cause?: string | null } };
  return { code: e.code, cause: e.data?.cause ?? null, message: e.message ?? String(error) };
}

/** Runs a change that should fail; a success is reported as a failure with code `resolved`. */
async function expectFailure(change: () => Promise<unknown>): Promise<WriteFailure> {
  try {
    await change();
    return { code: 'resolved', cause: null, message: 'the change succeeded' };
  } catch (error) {
    return failureOf(error);
  }
}

/** Names of temp files a writer left behind anywhere under dir. */
export async function leftoverTempFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((name) => name.endsWith('.tmp'));
}

const silent = pino({ level: 'silent' });

function openRegistry(stateDir: string): NodeRegistry {
  return new NodeRegistry({ stateDir, local: new Map(), log: silent, onChange: () => undefined });
}

function rows(registry: NodeRegistry): NodeRow[] {
  return registry
    .list()
    .map((r) => ({ name: r.name, availability: r.availability, certificateNotAfter: r.certificateNotAfter }));
}

async function reloadedRows(stateDir: string): Promise<{ rows: NodeRow[]; registry: NodeRegistry }> {
  const registry = openRegistry(stateDir);
  await registry.load();
  const result = rows(registry);
  await registry.close();
  return { rows: result, registry };
}

export interface RegistryObservation {
  before: NodeRow[];
  failures: WriteFailure[];
  memoryAfterFailure: NodeRow[];
  diskAfterFailure: NodeRow[];
  memoryAfterRepair: NodeRow[];
  diskAfterRepair: NodeRow[];
  /** Whether the certificate of the node removed after the repair is revoked in the reloaded registry. */
  removedNodeRevokedOnDisk: boolean;
  leftovers: string[];
}

/** The node registry (nodes.json): joins, then drain/remove/join while broken, then remove/drain once repaired. */
export async function registryScenario(
  stateDir: string,
  fault: FileSystemFault,
): Promise<RegistryObservation> {
  const authority = createCertificateAuthority();
  const ca = { certificatePem: authority.certificatePem, privateKeyPem: authority.privateKeyPem };
  const join = (registry: NodeRegistry, name: string) =>
    registry.join({ ca, name, publicKeyPem: generateKeyPair().publicKeyPem });
  const registry = openRegistry(stateDir);
  try {
    await registry.load();
    for (const name of ['n1', 'n2', 'n3']) await join(registry, name);
    const before = rows(registry);
    const removedSerial = registry.node('n2')?.serial ?? '';

    await fault.broken();
    const failures = [
      await expectFailure(() => registry.setAvailability('n1', 'drain')),
      await expectFailure(() => registry.remove('n2')),
      await expectFailure(() => join(registry, 'n4')),
    ];
    const memoryAfterFailure = rows(registry);
    const diskAfterFailure = (await reloadedRows(stateDir)).rows;

    await fault.repaired();
    await registry.remove('n2');
    await registry.setAvailability('n3', 'drain');
    const memoryAfterRepair = rows(registry);
    const reloaded = await reloadedRows(stateDir);
    return {
      before,
      failures,
      memoryAfterFailure,
      diskAfterFailure,
      memoryAfterRepair,
      diskAfterRepair: reloaded.rows,
      removedNodeRevokedOnDisk: reloaded.registry.isRevoked(removedSerial) !== undefined,
      leftovers: await leftoverTempFiles(stateDir),
    };
  } finally {
    await registry.close();
  }
}

export interface StoreObservation {
  failures: WriteFailure[];
  stateAfterFailure: OperatorState;
  historyAfterFailure: string[];
  historyBytesBefore: number;
  historyBytesAfterFailure: number;
  returnedAfterRepair: OperatorState;
  stateAfterRepair: OperatorState;
  historyAfterRepair: string[];
  leftovers: string[];
}

export const historyEntry = (revision: string): HistoryEntry => ({
  at: '2026-01-01T00:00:00.000Z',
  revision,
  // Long, so a batch needs fresh pages of a full disk rather than fitting the last one's tail.
  message: `commit ${revision} ${'x'.repeat(400)}`,
  service: 'default/web',
  change: 'update',
  outcome: 'succeeded',
  reason: null,
  durationMs: 1,
  started: [],
  removed: [],
});

const batch = (prefix: string): HistoryEntry[] =>
  Array.from({ length: 40 }, (_, i) => historyEntry(`${prefix}${i}`));

/** The operator's state.json and history.jsonl: an update and an append while broken, both again once repaired. */
export async function storeScenario(stateDir: string, fault: FileSystemFault): Promise<StoreObservation> {
  const store = new StateStore(stateDir);
  const good = (revision: string) => (s: OperatorState) => {
    s.lastGood = { revision, at: '2026-01-01T00:00:00.000Z' };
  };
  await store.update(good('r1'));
  await store.appendHistory([historyEntry('h1')]);
  const historyPath = join(stateDir, 'history.jsonl');
  const historyBytesBefore = (await stat(historyPath)).size;

  await fault.broken();
  const failures = [
    await expectFailure(() => store.update(good('r2'))),
    await expectFailure(() => store.appendHistory(batch('broken-'))),
  ];
  const stateAfterFailure = await new StateStore(stateDir).read();
  const historyAfterFailure = (await new StateStore(stateDir).readHistory()).map((e) => e.revision);
  const historyBytesAfterFailure = (await stat(historyPath)).size;

  await fault.repaired();
  const returnedAfterRepair = await store.update(good('r3'));
  await store.appendHistory(batch('repaired-').slice(0, 3));
  return {
    failures,
    stateAfterFailure,
    historyAfterFailure,
    historyBytesBefore,
    historyBytesAfterFailure,
    returnedAfterRepair,
    stateAfterRepair: await new StateStore(stateDir).read(),
    historyAfterRepair: (await new StateStore(stateDir).readHistory()).map((e) => e.revision),
    leftovers: await leftoverTempFiles(stateDir),
  };
}
