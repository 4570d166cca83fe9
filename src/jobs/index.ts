export {
  parseJob,
  serializeJob,
  jobDescription,
  JOB_KINDS,
  type JobDescription,
  type JobInput,
  type JobKind,
  type BackupJob,
  type RestoreDiskJob,
  type RestoreVmJob,
  type VerifyJob,
  type CopyJob,
  type PruneJob,
  type ForgetJob,
  type RestoreFilesJob,
  type VsphereSourceSpec,
} from './job.js';
export { runJob, type JobDeps, type JobEvent, type RunJobOptions } from './runner.js';
export type { ProxyCapabilities, ProxyRunOptions } from './proxy.js';
