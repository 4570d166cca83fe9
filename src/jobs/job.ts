import { z } from 'zod';
import { CofferError } from '../shared/index.js';

/*
 * A job is data: a kind and its arguments, as JSON, that any process can execute with runJob (runner.ts) - the
 * server's built-in job execution today, a remote `coffer proxy` next. It names repositories, sources and targets;
 * it never carries secrets (passwords and vCenter credentials come from the executing process's configuration).
 */

/** A repository as the executing process knows it: a configured name (server) or a location (CLI, proxy). */
const repository = z.string().min(1).max(4096);
const pointId = z.string().min(1).max(128);
const diskIndex = z.number().int().min(0).max(4096);

const tls = z.strictObject({ thumbprint: z.string().max(200).optional(), insecure: z.boolean().default(false) });

const disksSource = z.strictObject({
  type: z.literal('disks'),
  /** image paths, file:// or nbd:// URLs, in disk order */
  disks: z.array(z.string().min(1).max(4096)).min(1).max(256),
  /** NBD request timeout */
  timeoutMs: z.number().int().positive().optional(),
});

const vsphereSource = z.strictObject({
  type: z.literal('vsphere'),
  /** vsphere://HOST[:PORT]/VM (name, moref, inventory path); no credentials in it */
  url: z.string().min(1).max(4096),
  /** a vCenter of the executing server's configuration (its credentials and TLS policy) */
  vcenter: z.string().max(200).optional(),
  tls: tls.optional(),
  quiesce: z.boolean().default(true),
  transport: z.enum(['http', 'nbd']).default('http'),
  nbdUrl: z.string().max(4096).optional(),
});

export const backupJob = z.strictObject({
  kind: z.literal('backup'),
  repository,
  /** restore points are grouped by this name (default: the vSphere VM's name; required for disks) */
  vm: z.string().min(1).max(1024).optional(),
  source: z.discriminatedUnion('type', [disksSource, vsphereSource]),
  tags: z.array(z.string().max(1024)).max(100).default([]),
  /**
   * one of `tags` that marks this job's point (the server: `coffer-job:ID:CREATED`): a retried job whose earlier
   * attempt committed a point and was lost before reporting returns that point instead of backing up again
   */
  adoptTag: z.string().min(1).max(1024).optional(),
  verifyCbt: z.boolean().default(false),
  /** anomaly-score thresholds that differ from the defaults (a policy's `signals`; DESIGN.md §Ransomware signals) */
  signalThresholds: z
    .strictObject({
      suspiciousScore: z.number().min(0).max(100).optional(),
      historyPoints: z.number().int().min(1).max(1000).optional(),
      minHistoryPoints: z.number().int().min(0).max(1000).optional(),
      minIncompressibleShare: z.number().min(0).max(1).optional(),
      minChangedShare: z.number().min(0).max(1).optional(),
      medianFactor: z.number().min(0).max(1000).optional(),
      spreadFactor: z.number().min(0).max(1000).optional(),
      minIncompressibleFraction: z.number().min(0).max(1).optional(),
    })
    .optional(),
});

export const restoreDiskJob = z.strictObject({
  kind: z.literal('restore-disk'),
  repository,
  pointId,
  disk: diskIndex,
  /** a file or block device path of the executing machine */
  target: z.string().min(1).max(4096),
  force: z.boolean().default(false),
  format: z.enum(['raw', 'qcow2', 'vmdk', 'vhdx']).default('raw'),
  sync: z.boolean().default(false),
  checkIds: z.boolean().default(false),
});

export const restoreVmJob = z.strictObject({
  kind: z.literal('restore-vm'),
  repository,
  pointId,
  /** vsphere://HOST[:PORT]/NEWNAME */
  to: z.string().min(1).max(4096),
  vcenter: z.string().max(200).optional(),
  tls: tls.optional(),
  datastore: z.string().min(1).max(1024),
  folder: z.string().max(4096).optional(),
  pool: z.string().max(4096).optional(),
  host: z.string().max(1024).optional(),
  /** datacenter name or path (needed when the datastore name exists in several datacenters) */
  datacenter: z.string().min(1).max(1024).optional(),
  /** storage policy (PBM profile name) for every disk of a new VM (default: each disk's stored policy) */
  storagePolicy: z.string().min(1).max(255).optional(),
  /** restore over the existing VM of that name (powered off) */
  force: z.boolean().default(false),
  /** with force: write only what differs from the point into the VM's own disks (hot-add; CBT or comparison) */
  quick: z.boolean().default(false),
  /** quick: the VM the executing process runs in (default: found by its SMBIOS UUID) */
  proxyVm: z.string().max(1024).optional(),
  powerOn: z.boolean().default(false),
  checkIds: z.boolean().default(false),
  /** stored network name -> target network name */
  networkMap: z.record(z.string().min(1).max(1024), z.string().min(1).max(1024)).optional(),
  nicsDisconnected: z.boolean().default(false),
  keepMac: z.boolean().default(false),
  keepUuid: z.boolean().default(false),
  /** validate everything against vCenter and return the plan; create nothing */
  dryRun: z.boolean().default(false),
});

export const verifyJob = z.strictObject({
  kind: z.literal('verify'),
  repository,
  /** 0: presence only; 1: every referenced chunk read and re-hashed */
  readDataFraction: z.number().min(0).max(1).default(0),
  record: z.boolean().default(true),
});

export const copyJob = z.strictObject({
  kind: z.literal('copy'),
  from: repository,
  to: repository,
  select: z.union([
    z.strictObject({ ids: z.array(pointId).min(1).max(100_000) }),
    z.strictObject({ vm: z.string().max(1024).optional(), latest: z.boolean().optional() }),
  ]),
  /** upload cap to the target, bytes per second */
  limitUploadBytesPerSecond: z.number().int().min(1024).optional(),
});

export const pruneJob = z.strictObject({
  kind: z.literal('prune'),
  repository,
  /** another prune holds the repository: succeed with {skipped: true} instead of failing LOCKED */
  skipIfRunning: z.boolean().default(false),
});

const keep = z.number().int().min(0).max(1_000_000).optional();
export const forgetJob = z.strictObject({
  kind: z.literal('forget'),
  repository,
  policy: z.strictObject({ last: keep, hourly: keep, daily: keep, weekly: keep, monthly: keep, yearly: keep }),
  vm: z.string().max(1024).optional(),
  dryRun: z.boolean().default(false),
  prune: z.boolean().default(false),
});

export const restoreFilesJob = z.strictObject({
  kind: z.literal('restore-files'),
  repository,
  pointId,
  disk: diskIndex,
  /** a partition number as listed, or an LVM2 logical volume as "VG/LV" */
  partition: z
    .union([
      z.number().int().min(0).max(4096),
      z
        .string()
        .max(260)
        .regex(/^[^/]+\/[^/]+$/),
    ])
    .optional(),
  paths: z.array(z.string().min(1).max(65_536)).min(1).max(10_000),
  /** a local directory of the executing machine */
  target: z.string().min(1).max(4096),
  force: z.boolean().default(false),
});

export const checkJob = z.strictObject({
  kind: z.literal('check'),
  repository,
  pointId,
  /** file-level ransomware indicators against the VM's previous point instead of the filesystem check */
  files: z.boolean().default(false),
  /** per checker run */
  timeoutMs: z.number().int().positive().max(86_400_000).optional(),
  /** also boot the point in QEMU (FORMAT.md §8.1 `boot`): success = `marker` on the serial console */
  boot: z
    .strictObject({
      marker: z.string().min(1).max(256),
      timeoutMs: z.number().int().positive().max(86_400_000),
      memoryMB: z.number().int().min(128).max(65_536).optional(),
      /** success = the QEMU guest agent answers (FORMAT.md §8.1 `boot.signal`) instead of the marker */
      agent: z.boolean().optional(),
      /** an executable on the machine that runs the job (the server resolved it in its bootScriptsDir) */
      script: z.string().min(1).max(4096).optional(),
      scriptTimeoutMs: z.number().int().positive().max(86_400_000).optional(),
      /** guest TCP ports forwarded from 127.0.0.1 */
      forwards: z.array(z.number().int().min(1).max(65535)).max(16).optional(),
    })
    .optional(),
  record: z.boolean().default(true),
});

export const jobDescription = z.discriminatedUnion('kind', [
  backupJob,
  restoreDiskJob,
  restoreVmJob,
  verifyJob,
  copyJob,
  pruneJob,
  forgetJob,
  restoreFilesJob,
  checkJob,
]);

export type JobDescription = z.infer<typeof jobDescription>;
export type JobKind = JobDescription['kind'];
export type BackupJob = z.infer<typeof backupJob>;
export type CheckJob = z.infer<typeof checkJob>;
export type RestoreDiskJob = z.infer<typeof restoreDiskJob>;
export type RestoreVmJob = z.infer<typeof restoreVmJob>;
export type VerifyJob = z.infer<typeof verifyJob>;
export type CopyJob = z.infer<typeof copyJob>;
export type PruneJob = z.infer<typeof pruneJob>;
export type ForgetJob = z.infer<typeof forgetJob>;
export type RestoreFilesJob = z.infer<typeof restoreFilesJob>;
export type VsphereSourceSpec = z.infer<typeof vsphereSource>;
/** What a caller writes: defaults may be left out. */
export type JobInput = z.input<typeof jobDescription>;

export const JOB_KINDS: readonly JobKind[] = jobDescription.options.map((o) => o.shape.kind.value);

/**
 * Validates a job description (parsed JSON, or the JSON text); fills in defaults. USAGE with the problems otherwise.
 */
export function parseJob(input: unknown): JobDescription {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw new CofferError('USAGE', `job description is not JSON: ${(e as Error).message}`);
    }
  }
  const r = jobDescription.safeParse(value);
  if (!r.success) {
    const problems = r.error.issues.slice(0, 20).map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`);
    throw new CofferError('USAGE', `invalid job description: ${problems.join('; ')}`, { details: { problems } });
  }
  return r.data;
}

/** The JSON text of a job (validated first): what crosses a process boundary. */
export function serializeJob(job: JobInput): string {
  return JSON.stringify(parseJob(job));
}
