/**
 * The operator's rules for a node's certificates across a renewal, pure (the registry applies
 * them to nodes.json). A renewal never takes a working certificate away from a node:
 *
 *   1. renew: the node presents a certificate it may use and sends a new public key; the
 *      operator issues the next certificate and records it as `renewed`. The presented one
 *      stays valid.
 *   2. the node stores the new key and certificate, and connects with the new certificate:
 *      it becomes the node's current one, and the old one is revoked.
 *
 * A node that never uses its renewed certificate (it crashed before storing it) keeps using
 * the old one until that expires; its next renewal supersedes (revokes) the unused one. So at
 * most two certificates of a node are accepted at a time, the current and the renewed one.
 */

export interface RevokedCertificate {
  serial: string;
  node: string;
  at: string;
  /**
   * When the revoked certificate expires: after that the TLS layer refuses it by its dates, so
   * the entry is dropped and the list stays as long as one certificate lifetime of revocations.
   * Missing in files of earlier versions (kept until `at` plus the longest lifetime).
   */
  notAfter?: string;
}

export interface IssuedSerial {
  serial: string;
  notAfter: string;
}

/** The certificate fields of a joined node (nodes.json). */
export interface NodeCertificates {
  name: string;
  /** Serial of the certificate the node last connected with (or was issued at join). */
  serial: string;
  certificateNotAfter: string;
  /** Issued by a renewal, not yet used: accepted beside `serial` until used or superseded. */
  renewed?: IssuedSerial;
}

export type CertificateStanding =
  | { kind: 'current' }
  /** The node's renewed certificate: the first use makes it current and revokes the old one. */
  | { kind: 'renewed' }
  | { kind: 'refused'; reason: string };

/** Whether a node certificate may act (renew, connect), and as which of the node's certificates. */
export function certificateStanding(
  node: NodeCertificates | undefined,
  presented: { name: string; serial: string },
  revoked: RevokedCertificate | undefined,
): CertificateStanding {
  const { name, serial } = presented;
  if (revoked) {
    return {
      kind: 'refused',
      reason: `the certificate of node ${name} is revoked (the node was removed with berth node rm, or this certificate was replaced by a renewed one); to join again, run berth node rm ${name} on the operator if the node is still listed, then berth agent --join with a current token and a fresh state dir`,
    };
  }
  if (!node) {
    return {
      kind: 'refused',
      reason: `node ${name} is not a member of this cluster; join it with a token first`,
    };
  }
  if (node.serial === serial) return { kind: 'current' };
  if (node.renewed?.serial === serial) return { kind: 'renewed' };
  return {
    kind: 'refused',
    reason: `node ${name} presents a certificate that is not its current one; to join it again, run berth node rm ${name} on the operator, then berth agent --join with a current token and a fresh state dir`,
  };
}

function revocation(node: NodeCertificates, serial: string, at: string): RevokedCertificate {
  const notAfter =
    serial === node.renewed?.serial
      ? node.renewed.notAfter
      : serial === node.serial
        ? node.certificateNotAfter
        : undefined;
  return { serial, node: node.name, at, ...(notAfter === undefined ? {} : { notAfter }) };
}

/**
 * The revocations still needed at `now`: a certificate past its expiry is refused anyway, so its
 * entry goes. An entry without an expiry (earlier versions) goes once `keepMs` (the longest
 * certificate lifetime) has passed since it was revoked.
 */
export function currentRevocations(
  revoked: readonly RevokedCertificate[],
  now: number,
  keepMs: number,
): RevokedCertificate[] {
  return revoked.filter((r) => {
    const until = r.notAfter === undefined ? Date.parse(r.at) + keepMs : Date.parse(r.notAfter);
    return !(until < now);
  });
}

/** The node after its first use of the renewed certificate: it is current, the old one revoked. */
export function promoteRenewed<T extends NodeCertificates>(
  node: T,
  at: string,
): { node: T; revoked: RevokedCertificate[] } {
  if (!node.renewed) return { node, revoked: [] };
  const { renewed, ...rest } = node;
  return {
    node: { ...rest, serial: renewed.serial, certificateNotAfter: renewed.notAfter } as T,
    revoked: [revocation(node, node.serial, at)],
  };
}

/**
 * The node after a renewal that issued `issued` to the holder of `presentedSerial`. Presenting
 * the renewed certificate uses it (as a connection would); a renewed certificate that is not
 * the presented one was never used and is superseded.
 */
export function recordRenewal<T extends NodeCertificates>(
  node: T,
  presentedSerial: string,
  issued: IssuedSerial,
  at: string,
): { node: T; revoked: RevokedCertificate[] } {
  const promoted =
    node.renewed?.serial === presentedSerial ? promoteRenewed(node, at) : { node, revoked: [] };
  const superseded = promoted.node.renewed;
  return {
    node: { ...promoted.node, renewed: issued },
    revoked: [...promoted.revoked, ...(superseded ? [revocation(node, superseded.serial, at)] : [])],
  };
}

/** Every certificate of the node: revoked together when it is removed. */
export function allCertificatesOf(node: NodeCertificates, at: string): RevokedCertificate[] {
  return [node.serial, ...(node.renewed ? [node.renewed.serial] : [])].map((serial) =>
    revocation(node, serial, at),
  );
}
