import type { JobInput } from '../../jobs/index.js';
import type { Repository } from '../../repository/index.js';
import type { Logger } from '../../shared/index.js';
import type { Job, JobKind, JobProgress } from '../catalog/index.js';

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
  CheckParams,
  RestoreParams,
  RestoreVmParams,
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

/** Progress as src/jobs reports it (bytes for backup and restore, items for verify and prune). */
export interface ExecProgress {
  unit: 'bytes' | 'items';
  done: number;
  total: number;
  phase?: string | undefined;
}

/** What a job kind gets to run one attempt of one job. */
export interface JobContext {
  /** the job, with this attempt's number */
  job: Job;
  signal: AbortSignal;
  /** writes to the job's log */
  logger: Logger;
  /**
   * Executes a job description (src/jobs: kind + arguments, the same data a remote proxy would get) with this
   * server's repositories, sources and restore directories; its log lines go to the job's log, its progress to
   * `onProgress`. Resolves with the description's result.
   */
  execute(description: JobInput, onProgress?: (p: ExecProgress) => void): Promise<unknown>;
  /** the job's repository (opened once per server run) */
  repository(): Promise<Repository>;
  /** records progress (the catalog and live subscribers), at most every 250 ms except the last */
  progress(bytesDone: number, bytesTotal: number, phase?: string): void;
  /** records progress at once, unthrottled */
  progressNow(p: JobProgress): void;
  /** re-reads the job's repository into the catalog (its restore points, statistics); failures are logged only */
  refreshCatalog(): Promise<void>;
}

/**
 * One kind of server job (backup, restore, verify, prune): turns the catalog's job into a src/jobs description and
 * adds what only the server does (retention of a policy, the catalog refresh); queueing and retries are the runner's.
 * The description is executed by whichever proxy placement chose (this server's own runner or a remote
 * `coffer proxy`), so the server's parts are separate steps around it (docs/DESIGN.md §Proxies and placement).
 */
export interface JobKindHandler {
  readonly kind: JobKind;
  /** the description of this attempt; rejects with the attempt's failure (e.g. an unreadable vCenter) */
  describe(ctx: JobContext): Promise<JobInput>;
  /** records the executing runner's progress on the job */
  onProgress(ctx: JobContext, p: ExecProgress): void;
  /** the server's part once the description succeeded; resolves with the job's result (stored in the catalog) */
  succeeded(ctx: JobContext, result: unknown): Promise<unknown>;
  /** the server's part once it failed (before the retry decision) */
  failed?(ctx: JobContext, error: unknown): Promise<void>;
}

/** One attempt on this server: describe, execute here, then the server's part. */
export async function runHere(handler: JobKindHandler, ctx: JobContext): Promise<unknown> {
  const description = await handler.describe(ctx);
  let result: unknown;
  try {
    result = await ctx.execute(description, (p) => handler.onProgress(ctx, p));
  } catch (e) {
    await handler.failed?.(ctx, e);
    throw e;
  }
  return handler.succeeded(ctx, result);
}
