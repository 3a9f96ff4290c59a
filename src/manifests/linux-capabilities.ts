/**
 * Linux capabilities a Service may name. schemas/service.schema.json lists the same names (the
 * schema is what validates manifests); linux-capabilities.test.ts checks the two agree.
 */

/** Every capability of Linux 5.9+ (capabilities(7)), without the CAP_ prefix, as Kubernetes writes them. */
export const LINUX_CAPABILITIES = Object.freeze([
  'AUDIT_CONTROL',
  'AUDIT_READ',
  'AUDIT_WRITE',
  'BLOCK_SUSPEND',
  'BPF',
  'CHECKPOINT_RESTORE',
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'IPC_LOCK',
  'IPC_OWNER',
  'KILL',
  'LEASE',
  'LINUX_IMMUTABLE',
  'MAC_ADMIN',
  'MAC_OVERRIDE',
  'MKNOD',
  'NET_ADMIN',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_RAW',
  'PERFMON',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYSLOG',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_CHROOT',
  'SYS_MODULE',
  'SYS_NICE',
  'SYS_PACCT',
  'SYS_PTRACE',
  'SYS_RAWIO',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'WAKE_ALARM',
] as const);

/** `capabilities.drop: [ALL]` starts from none; `add` then gives back what the service needs. */
export const ALL_CAPABILITIES = 'ALL';

/**
 * What `capabilities.add` accepts: the Kubernetes Pod Security Standards "baseline" allowlist,
 * which is Docker's default set without NET_RAW. Adding one of these never gives a container more
 * than a plain `docker run` has, so a manifest cannot reach the host this way: SYS_ADMIN,
 * NET_ADMIN, SYS_PTRACE, SYS_MODULE, NET_RAW and the rest are refused.
 */
export const ADDABLE_CAPABILITIES = Object.freeze([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
] as const);

export type LinuxCapability = (typeof LINUX_CAPABILITIES)[number];
export type AddableCapability = (typeof ADDABLE_CAPABILITIES)[number];
