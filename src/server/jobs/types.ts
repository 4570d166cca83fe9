import type { CodecPool } from '../../engine/index.js';
import type { Repository } from '../../repository/index.js';
import type { Logger } from '../../shared/index.js';
import type { Catalog, Job, JobKind, JobProgress } from '../catalog/index.js';

export type {
  BackupParams,
  Catalog,
  Job,
  JobError,
  JobKind,
  JobLogLine,
  JobProgress,
  JobStatus,
  LogLevel,
  PruneParams,
  RestoreParams,
  VerifyParams,
} from '../catalog/index.js';

export interface NewJob {
  kind: JobKind;
  repository: string;
  vm?: string | null;
  policyId?: string | null;
  params: Job['params'];
  trigger?: Job['trigger'];
  requestedBy: string;
}

/** What a job kind gets to run one attempt of one job. */
export interface JobContext {
  /** the job, with this attempt's number */
  job: Job;
  signal: AbortSignal;
  /** writes to the job's log */
  logger: Logger;
  repo: Repository;
  /** this job's own codec pool (closed by the runner) */
  pool: CodecPool;
  /** records progress (the catalog and live subscribers), at most every 250 ms except the last */
  progress(bytesDone: number, bytesTotal: number, phase?: string): void;
  /** records progress at once, unthrottled */
  progressNow(p: JobProgress): void;
  /** re-reads the job's repository into the catalog (its restore points, statistics); failures are logged only */
  refreshCatalog(): Promise<void>;
}

/** One kind of job (backup, restore, verify, prune): what one attempt does; queueing and retries are the runner's. */
export interface JobKindHandler {
  readonly kind: JobKind;
  /** resolves with the job's result (stored in the catalog), rejects with the failure */
  run(ctx: JobContext): Promise<unknown>;
}
