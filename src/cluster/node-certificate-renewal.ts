/**
 * The agent's side of certificate renewal. Once a third of the certificate's lifetime is left:
 *
 *   1. make a new key pair and send its public key to /v1/renew with the current certificate;
 *      the operator issues the next certificate and keeps the current one valid
 *   2. check that the answer is a certificate of the cluster CA for the new key and this node
 *   3. write key and certificate as one unit (node.pem, one atomic rename)
 *   4. only then use it: reconnect with it; the operator revokes the old one at that connection
 *
 * A crash at any step leaves a working identity on disk: before step 3 the old key and
 * certificate (still valid at the operator), after it the new ones (accepted as the node's
 * renewed certificate). A failed write (a full disk) keeps the old identity in use and tries a
 * whole new renewal at the next check.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Logger } from '../core/log.js';
import { CLOCK_SKEW_MS, generateKeyPair, renewalDueAt } from './certificates.js';
import { saveCredentials, serialOf, type NodeCredentials } from './node-credentials.js';
import { requestJson } from './operator-request.js';
import { CLUSTER_PATHS } from './rpc-protocol.js';

/** The steps of a renewal at which a test may make the agent crash (see crashForTestAt). */
export type RenewalStep = 'renew-requested' | 'renew-received' | 'renew-stored';

/**
 * TEST HOOK, read only by the crash tests (test/cluster/cert-renewal-crash.test.ts):
 * BERTH_TEST_CRASH_AT=<step> makes the agent kill itself with SIGKILL at that step of its first
 * renewal, so a test restarts it from exactly the state a crash there leaves, without racing a
 * timer. Steps:
 *   renew-requested  the operator has answered the renewal (issued and recorded the next
 *                    certificate); the agent has not read the answer
 *   renew-received   the agent holds the new key and checked certificate in memory, unwritten
 *   renew-stored     node.pem holds the new key and certificate; the agent has not used them
 */
function crashForTestAt(step: RenewalStep): void {
  if (process.env['BERTH_TEST_CRASH_AT'] !== step) return;
  process.kill(process.pid, 'SIGKILL');
  process.exit(137);
}

/** Asks for the next certificate (for a fresh key) with the current one, and checks what comes back. */
export async function requestRenewal(url: string, credentials: NodeCredentials): Promise<NodeCredentials> {
  const keys = generateKeyPair();
  const answer = (await requestJson(
    url,
    { ca: credentials.caCertificatePem, cert: credentials.certificatePem, key: credentials.privateKeyPem },
    'POST',
    CLUSTER_PATHS.renew,
    { publicKeyPem: keys.publicKeyPem },
  )) as { certificatePem?: unknown };
  crashForTestAt('renew-requested');
  if (typeof answer.certificatePem !== 'string') throw new Error('the operator sent no certificate');
  const next = { ...credentials, certificatePem: answer.certificatePem, privateKeyPem: keys.privateKeyPem };
  checkRenewed(credentials, next);
  return next;
}

/** The renewed certificate must be the CA's, for the new key and the same node: else it is not kept. */
function checkRenewed(current: NodeCredentials, next: NodeCredentials): void {
  const certificate = new X509Certificate(next.certificatePem);
  const ca = new X509Certificate(current.caCertificatePem);
  if (!certificate.verify(ca.publicKey))
    throw new Error('the renewed certificate is not signed by the cluster CA');
  if (!certificate.checkPrivateKey(createPrivateKey(next.privateKeyPem))) {
    throw new Error('the renewed certificate is not for the new key');
  }
  if (certificate.subject !== new X509Certificate(current.certificatePem).subject) {
    throw new Error(`the renewed certificate names ${certificate.subject}, not this node`);
  }
}

export interface RenewalLink {
  url: string;
  stateDir: string;
  log: Logger;
  /** The credentials the connection uses now. */
  current(): NodeCredentials;
  /** Whether the connection is closed for good (no more renewals). */
  closed(): boolean;
  /** Uses stored renewed credentials: reconnects with them. */
  adopt(credentials: NodeCredentials): void;
}

/** One renewal, steps 1 to 4 (see the file comment). Rejects, changing nothing, when a step fails. */
async function renew(link: RenewalLink): Promise<void> {
  const next = await requestRenewal(link.url, link.current());
  crashForTestAt('renew-received');
  await saveCredentials(link.stateDir, next);
  crashForTestAt('renew-stored');
  link.log.info(
    { serial: serialOf(next.certificatePem), validTo: new X509Certificate(next.certificatePem).validTo },
    'node certificate renewed and stored; reconnecting with it',
  );
  link.adopt(next);
}

/**
 * Checks at once and then ten times per lifetime (at most hourly) whether the certificate is due
 * for renewal, and renews it when it is. Returns the timer, for close().
 */
export function startRenewal(link: RenewalLink): NodeJS.Timeout {
  let renewing = false;
  const renewIfDue = async (): Promise<void> => {
    if (renewing || link.closed()) return;
    if (Date.now() < renewalDueAt(new X509Certificate(link.current().certificatePem))) return;
    renewing = true;
    try {
      await renew(link);
    } catch (error) {
      link.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'certificate renewal failed; the current certificate stays in use, will retry',
      );
    } finally {
      renewing = false;
    }
  };
  const first = new X509Certificate(link.current().certificatePem);
  const lifetimeMs = new Date(first.validTo).getTime() - new Date(first.validFrom).getTime() - CLOCK_SKEW_MS;
  const timer = setInterval(() => void renewIfDue(), Math.min(3_600_000, Math.max(1000, lifetimeMs / 10)));
  timer.unref();
  // An agent restarted with a certificate already due (it crashed mid-renewal) renews at once.
  void renewIfDue();
  return timer;
}
