import { join } from 'node:path';
import type { MeshDataPlane, NodeAgent } from '../api/types.js';
import { volumeLocations } from '../api/volume-locations.js';
import { BerthError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { readFileIfExists, writeFileAtomic, writeLanded } from '../core/atomic-file.js';
import {
  CLOCK_SKEW_MS,
  NODE_CERTIFICATE_DAYS,
  issueCertificate,
  normaliseSerial,
  type IssuedCertificate,
} from './certificates.js';
import {
  allCertificatesOf,
  certificateStanding,
  promoteRenewed,
  recordRenewal,
  type CertificateStanding,
  type NodeCertificates,
  type RevokedCertificate,
  currentRevocations,
} from './certificate-rotation.js';
import { clusterDir, type PemPair } from './cluster-identity.js';
import { isLoopbackAddress } from './advertise-address.js';
import { ConnectedNodeAgent } from './connected-node-agent.js';
import { changeLabels, placementDrift, type RecordedPlacement } from './node-placement.js';

export type NodeAvailability = 'active' | 'drain';

export type { RevokedCertificate } from './certificate-rotation.js';

/**
 * A joined node: its certificates (current, and renewed but not yet used; see
 * certificate-rotation.ts), and its labels and advertise address (node-placement.ts), absent only
 * for a node joined by an earlier version until its first snapshot records them.
 */
export interface JoinedNode extends NodeCertificates, Partial<RecordedPlacement> {
  joinedAt: string;
  availability: NodeAvailability;
}

interface RegistryFile {
  nodes: JoinedNode[];
  revoked: RevokedCertificate[];
}

/** One line of `berth node ls`. */
export interface NodeListing {
  name: string;
  /** `unreachable`: its connection dropped, within the grace before it counts as down. */
  status: 'ready' | 'unreachable' | 'down';
  availability: NodeAvailability;
  /** `local` for the operator's own embedded node, else `joined`. */
  kind: 'local' | 'joined';
  address: string | null;
  labels: Record<string, string>;
  replicas: number | null;
  lastHeard: string | null;
  certificateNotAfter: string | null;
  /** What carries the node's published TCP ports (nftables or userspace); null until it says. */
  dataPlane: MeshDataPlane | null;
  /** The berth version of the node's agent; null until it says (or an agent too old to say). */
  agentVersion: string | null;
  /** Why the node takes no new replicas although active: its agent is older than the operator. */
  incompatible: string | null;
}

/** Node names are DNS-label-like, so they are safe in container labels, logs and certificates. */
const NODE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/**
 * The operator's registry of joined nodes (`<state-dir>/cluster/nodes.json`, written only by
 * the operator, atomically) and their live connections. The reconcile's agents() is every
 * local node plus every joined node; a joined node without a connection answers nothing, so
 * it is observed as down and its replicas are rescheduled.
 */
export class NodeRegistry {
  private readonly path: string;
  private file: RegistryFile = { nodes: [], revoked: [] };
  private readonly connected = new Map<string, ConnectedNodeAgent>();
  private readonly local: ReadonlyMap<string, NodeAgent>;
  private readonly localDrained = new Set<string>();
  private readonly log: Logger;
  private readonly onChange: (reason: string) => void;
  private writes: Promise<unknown> = Promise.resolve();
  private readonly downTimers = new Set<NodeJS.Timeout>();
  private readonly certificateMs: number;
  /** The drift last logged per node, so a node that keeps reporting the same is logged once. */
  private readonly driftLogged = new Map<string, string>();

  constructor(args: {
    stateDir: string;
    local: ReadonlyMap<string, NodeAgent>;
    log: Logger;
    onChange: (reason: string) => void;
    /** Lifetime of node certificates (`berth run --cert-expiry`). */
    certificateMs?: number;
  }) {
    this.certificateMs = args.certificateMs ?? NODE_CERTIFICATE_DAYS * 86_400_000;
    this.path = join(clusterDir(args.stateDir), 'nodes.json');
    this.local = args.local;
    this.log = args.log;
    this.onChange = args.onChange;
  }

  async load(): Promise<void> {
    const text = await readFileIfExists(this.path);
    if (text !== null) {
      const parsed = JSON.parse(text) as Partial<RegistryFile>;
      this.file = { nodes: parsed.nodes ?? [], revoked: parsed.revoked ?? [] };
    }
    // Known nodes get the grace from the operator's start to reconnect before they count as down.
    for (const node of this.file.nodes) this.agentOf(node).heard();
  }

  /**
   * Changes the registry through nodes.json: `change` edits a copy, the copy is written, and
   * only a written copy becomes the registry. A failed write rejects this one call and leaves
   * memory as it was, so memory and disk agree and the next change writes everything again.
   * Changes run one at a time, each on the result of the one before.
   */
  private commit<T>(change: (file: RegistryFile) => T): Promise<T> {
    const result = this.writes.then(async () => {
      const next = structuredClone(this.file);
      const value = change(next);
      const keepMs = Math.max(this.certificateMs, NODE_CERTIFICATE_DAYS * 86_400_000);
      next.revoked = currentRevocations(next.revoked, Date.now(), keepMs);
      try {
        await writeFileAtomic(this.path, `${JSON.stringify(next, null, 2)}\n`, 0o644);
      } catch (error) {
        if (writeLanded(error)) this.file = next;
        throw error;
      }
      this.file = next;
      return value;
    });
    this.writes = result.catch(() => undefined);
    return result;
  }

  private agentOf(node: JoinedNode): ConnectedNodeAgent {
    let agent = this.connected.get(node.name);
    if (!agent) {
      agent = new ConnectedNodeAgent(node.name);
      const name = node.name;
      agent.onReported = (reported) => this.reported(name, reported);
      this.connected.set(node.name, agent);
    }
    agent.drained = node.availability === 'drain';
    agent.recorded = {
      ...(node.labels === undefined ? {} : { labels: node.labels }),
      ...(node.address === undefined ? {} : { address: node.address }),
    };
    return agent;
  }

  /**
   * A node's snapshot reported these labels and address: a node joined by an earlier version has
   * them recorded now (its first report after the upgrade); any other difference is logged once
   * and otherwise ignored, the recorded ones stand.
   */
  private reported(name: string, reported: RecordedPlacement): void {
    const node = this.node(name);
    if (!node) return;
    if (node.labels === undefined || node.address === undefined) {
      this.recordReported(name, reported).catch((error: unknown) =>
        this.log.error({ node: name, err: error }, 'cannot record the labels and address of a node'),
      );
      return;
    }
    const drift = placementDrift(node, reported)
      .map((d) => d.detail)
      .join('; ');
    if (drift === (this.driftLogged.get(name) ?? '')) return;
    this.driftLogged.set(name, drift);
    if (drift !== '')
      this.log.warn({ node: name, drift }, 'node reports a placement the operator does not hold: ignored');
  }

  private async recordReported(name: string, reported: RecordedPlacement): Promise<void> {
    const node = await this.commit((file) => {
      const entry = file.nodes.find((n) => n.name === name);
      if (!entry) return undefined;
      entry.labels ??= reported.labels;
      entry.address ??= reported.address;
      return entry;
    });
    if (!node) return;
    this.agentOf(node);
    this.log.info(
      { node: name, labels: node.labels, address: node.address },
      'recorded the labels and address of a node joined by an earlier version',
    );
  }

  /** Every node the reconcile drives: the local ones, then the joined ones. */
  agents(): ReadonlyMap<string, NodeAgent> {
    const all = new Map<string, NodeAgent>();
    for (const [name, agent] of this.local) {
      all.set(name, this.localDrained.has(name) ? drainedView(agent) : agent);
    }
    for (const node of this.file.nodes) all.set(node.name, this.agentOf(node));
    return all;
  }

  isRevoked(serial: string): RevokedCertificate | undefined {
    const wanted = normaliseSerial(serial);
    return this.file.revoked.find((r) => r.serial === wanted);
  }

  node(name: string): JoinedNode | undefined {
    return this.file.nodes.find((n) => n.name === name);
  }

  /**
   * Admits a node that presented the join secret: issues its certificate and records its labels
   * and advertise address. A name that is already a member is refused, whoever asks: the node's
   * certificate is its identity, and a token holder must not take over a node's name (and with it
   * its replicas and traffic). A reinstalled host joins again after `berth node rm`. Nor may a
   * node join with another member's address (the mesh would route to what it says runs there);
   * loopback addresses are exempt: nodes that share one are all on one host (tests, simulations).
   */
  async join(args: {
    ca: PemPair;
    name: string;
    publicKeyPem: string;
    labels?: Record<string, string>;
    address?: string;
  }): Promise<{ certificatePem: string }> {
    if (!NODE_NAME.test(args.name)) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `node name "${args.name}" is not valid (letters, digits, . _ -; at most 63)`,
      );
    }
    if (this.local.has(args.name)) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `node name "${args.name}" is the operator's own node; pick another --node`,
      );
    }
    refuseTaken(this.file, args);
    const issued = this.issue(args);
    const joined = await this.commit((file) => {
      // Checked again in the queue: two joins may race.
      refuseTaken(file, args);
      const node: JoinedNode = {
        name: args.name,
        serial: issued.serial,
        certificateNotAfter: issued.notAfter,
        joinedAt: new Date().toISOString(),
        availability: 'active',
        ...(args.labels === undefined ? {} : { labels: args.labels }),
        ...(args.address === undefined ? {} : { address: args.address }),
      };
      file.nodes.push(node);
      file.nodes.sort((a, b) => a.name.localeCompare(b.name));
      return node;
    });
    this.driftLogged.delete(args.name);
    this.agentOf(joined);
    this.log.info({ node: args.name, labels: joined.labels, address: joined.address }, 'node joined');
    return { certificatePem: issued.certificatePem };
  }

  private issue(args: { ca: PemPair; name: string; publicKeyPem: string }): IssuedCertificate {
    try {
      return issueCertificate({
        ca: args.ca,
        publicKeyPem: args.publicKeyPem,
        role: 'node',
        name: args.name,
        validity: {
          notBefore: new Date(Date.now() - CLOCK_SKEW_MS),
          notAfter: new Date(Date.now() + this.certificateMs),
        },
      });
    } catch (error) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `cannot issue a certificate for that public key: ${String(error)}`,
      );
    }
  }

  /**
   * The next certificate for a node that presented one it may use (checked by the caller). The
   * presented one stays valid until the node connects with the new one (see certificate-rotation.ts).
   */
  async renew(args: {
    ca: PemPair;
    name: string;
    presentedSerial: string;
    publicKeyPem: string;
  }): Promise<{ certificatePem: string }> {
    const notJoined = (): BerthError =>
      new BerthError('ERR_AGENT_UNAUTHORIZED', `node ${args.name} is not joined`);
    if (!this.node(args.name)) throw notJoined();
    const issued = this.issue(args);
    await this.commit((file) => {
      const at = new Date().toISOString();
      const node = joinedNode(file, args.name, notJoined);
      const next = recordRenewal(node, normaliseSerial(args.presentedSerial), issued, at);
      Object.assign(node, next.node);
      file.revoked.push(...next.revoked);
    });
    this.log.info(
      { node: args.name, serial: issued.serial, notAfter: issued.notAfter },
      'node certificate renewed; the current one stays valid until the node connects with the new one',
    );
    return { certificatePem: issued.certificatePem };
  }

  /** Whether a node certificate may act (renew, connect), and as which of the node's certificates. */
  standing(name: string, serial: string): CertificateStanding {
    return certificateStanding(
      this.node(name),
      { name, serial: normaliseSerial(serial) },
      this.isRevoked(serial),
    );
  }

  /** The node connects with its renewed certificate: that one becomes current, the old one is revoked. */
  async useRenewed(name: string, serial: string): Promise<void> {
    const revoked = await this.commit((file) => {
      const node = file.nodes.find((n) => n.name === name);
      if (node?.renewed?.serial !== normaliseSerial(serial)) return [];
      const next = promoteRenewed(node, new Date().toISOString());
      delete node.renewed;
      Object.assign(node, next.node);
      file.revoked.push(...next.revoked);
      return next.revoked;
    });
    // A second connection with the same certificate finds it current already: nothing to say.
    if (revoked.length === 0) return;
    this.log.info(
      { node: name, serial: normaliseSerial(serial), revoked: revoked.map((r) => r.serial) },
      'node connects with its renewed certificate; the previous one is revoked',
    );
  }

  attach(name: string, socket: import('ws').WebSocket): ConnectedNodeAgent {
    const node = this.node(name);
    if (!node) throw new BerthError('ERR_AGENT_UNAUTHORIZED', `node ${name} is not joined`);
    const agent = this.agentOf(node);
    agent.attach(socket);
    this.log.info({ node: name }, 'node connected');
    socket.on('close', () => {
      if (agent.connected) return;
      this.log.warn({ node: name, downInMs: agent.msUntilDown }, 'node connection lost');
      // Down once the grace runs out without a reconnect; then a reconcile moves its replicas.
      const timer = setTimeout(() => {
        this.downTimers.delete(timer);
        if (agent.connected || !this.connected.has(name)) return;
        this.log.warn({ node: name, lastHeard: agent.lastHeardIso }, 'node is down');
        this.onChange(`node ${name} down`);
      }, agent.msUntilDown + 10);
      this.downTimers.add(timer);
    });
    this.onChange(`node ${name} up`);
    return agent;
  }

  async setAvailability(name: string, availability: NodeAvailability): Promise<void> {
    if (this.local.has(name)) {
      if (availability === 'drain') this.localDrained.add(name);
      else this.localDrained.delete(name);
    } else {
      const node = await this.commit((file) => {
        const changed = joinedNode(
          file,
          name,
          () => new BerthError('ERR_BAD_REQUEST', `no node named ${name} (see berth node ls)`),
        );
        changed.availability = availability;
        return changed;
      });
      this.agentOf(node);
    }
    this.log.info({ node: name, availability }, 'node availability changed');
    this.onChange(`node ${name} ${availability}`);
  }

  /**
   * `berth node label`: sets and removes labels of a joined node in nodes.json; a reconcile
   * follows, so placement follows the new labels. The operator's own node takes none this way.
   */
  async setLabels(
    name: string,
    change: { set: Record<string, string>; remove: string[] },
  ): Promise<Record<string, string>> {
    if (this.local.has(name)) {
      throw new BerthError(
        'ERR_BAD_REQUEST',
        `node ${name} is the operator's own node: its labels are not held in the node registry`,
      );
    }
    const node = await this.commit((file) => {
      const changed = joinedNode(
        file,
        name,
        () => new BerthError('ERR_BAD_REQUEST', `no joined node named ${name} (see berth node ls)`),
      );
      // A node joined by an earlier version and not heard from since: start from what it last said.
      const current = changed.labels ?? this.connected.get(name)?.lastSnapshot?.labels ?? {};
      changed.labels = changeLabels(current, change);
      return changed;
    });
    this.agentOf(node);
    this.driftLogged.delete(name);
    const labels = node.labels ?? {};
    this.log.info({ node: name, labels }, 'node labels changed');
    this.onChange(`node ${name} labels`);
    return labels;
  }

  /** Removes a joined node: its certificate is revoked and its connection dropped at once. */
  async remove(name: string): Promise<void> {
    await this.commit((file) => {
      const node = joinedNode(
        file,
        name,
        () => new BerthError('ERR_BAD_REQUEST', `no joined node named ${name} (see berth node ls)`),
      );
      file.nodes = file.nodes.filter((n) => n.name !== name);
      file.revoked.push(...allCertificatesOf(node, new Date().toISOString()));
    });
    const agent = this.connected.get(name);
    this.connected.delete(name);
    this.driftLogged.delete(name);
    await agent?.close();
    // Its volumes stay on its disks, out of the cluster: no slot waits for them any more.
    volumeLocations().forget(name);
    await volumeLocations().save(this.log);
    this.log.warn({ node: name }, 'node removed; its certificate is revoked');
    this.onChange(`node ${name} removed`);
  }

  list(): NodeListing[] {
    const rows: NodeListing[] = [];
    for (const [name, agent] of this.local) {
      rows.push({
        name,
        status: 'ready',
        availability: this.localDrained.has(name) ? 'drain' : 'active',
        kind: 'local',
        address: null,
        labels: {},
        replicas: null,
        lastHeard: null,
        certificateNotAfter: null,
        dataPlane: agent.meshDataPlane?.() ?? null,
        agentVersion: agent.reportedAgent?.()?.version ?? null,
        incompatible: agent.reportedAgent?.()?.incompatible ?? null,
      });
    }
    for (const node of this.file.nodes) {
      const agent = this.agentOf(node);
      const snapshot = agent.lastSnapshot;
      rows.push({
        name: node.name,
        status: agent.connected ? 'ready' : agent.down ? 'down' : 'unreachable',
        availability: node.availability,
        kind: 'joined',
        address: node.address ?? snapshot?.address ?? null,
        labels: node.labels ?? snapshot?.labels ?? {},
        replicas: snapshot?.replicas.length ?? null,
        lastHeard: agent.lastHeardIso,
        certificateNotAfter: node.certificateNotAfter,
        dataPlane: snapshot?.dataPlane ?? null,
        agentVersion: snapshot?.agent?.version ?? null,
        incompatible: snapshot?.incompatible ?? null,
      });
    }
    return rows;
  }

  async close(): Promise<void> {
    for (const timer of this.downTimers) clearTimeout(timer);
    await Promise.all([...this.connected.values()].map((a) => a.close()));
    await this.writes;
  }
}

/** Refuses a join under a member's name, or with a member's (non-loopback) advertise address. */
function refuseTaken(file: RegistryFile, wanted: { name: string; address?: string }): void {
  const { name, address } = wanted;
  if (file.nodes.some((n) => n.name === name)) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `join refused: node "${name}" is already a member of this cluster; remove it first with "berth node rm ${name}"`,
    );
  }
  const holder =
    address === undefined || isLoopbackAddress(address)
      ? undefined
      : file.nodes.find((n) => n.address === address);
  if (holder) {
    throw new BerthError(
      'ERR_AGENT_UNAUTHORIZED',
      `join refused: address ${address} is the advertise address of node "${holder.name}"; give this node its own --advertise-addr, or remove "${holder.name}" first with "berth node rm ${holder.name}"`,
    );
  }
}

/** The joined node of that name in `file`, or the `missing` error. */
function joinedNode(file: RegistryFile, name: string, missing: () => BerthError): JoinedNode {
  const node = file.nodes.find((n) => n.name === name);
  if (!node) throw missing();
  return node;
}

/** A local node under drain: the same agent, observed with status `drain`. */
function drainedView(agent: NodeAgent): NodeAgent {
  return {
    name: agent.name,
    snapshot: async () => ({ ...(await agent.snapshot()), status: 'drain' }),
    ensureReplica: (request) => agent.ensureReplica(request),
    prepareReplica: (request) => agent.prepareReplica(request),
    awaitReplica: (name, options) => agent.awaitReplica(name, options),
    watchReplica: (name, options) => agent.watchReplica(name, options),
    removeReplica: (name) => agent.removeReplica(name),
    listVolumes: () => agent.listVolumes(),
    removeVolume: (name) => agent.removeVolume(name),
    setMeshRoutes: (table, options) => agent.setMeshRoutes(table, options),
    logs: (name, options) => agent.logs(name, options),
    awaitChange: (since, options) => agent.awaitChange(since, options),
    close: () => agent.close(),
  };
}
