import type { ErrorCode } from '../../shared/index.js';
import type { JobKind } from '../catalog/index.js';

/**
 * Failures worth another attempt (after backoff). Every other code is permanent: NOT_FOUND, WRONG_KEY,
 * ACCESS_DENIED, VSPHERE_AUTH, VSPHERE_DISK_LAYOUT, SOURCE_UNSUPPORTED, USAGE ... fail the same way again.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['TRANSIENT', 'IO', 'LOCKED', 'SOURCE_UNREADABLE', 'PARTIAL']);

/**
 * A SOURCE_UNREADABLE (or IO) failure that says the source is missing or refused: a path that does not exist or
 * cannot be opened stays so (issue 20: "no such file" was retried three times over 90 s). A dropped connection
 * or a read error in the middle of a disk is still retried.
 */
const PERMANENT_SOURCE = new RegExp(
  'no such file|ENOENT|EACCES|EPERM|permission denied|not a (regular file|block device|directory)|is a directory|' +
    'ENOTDIR',
  'i',
);

/** True when the failure cannot succeed on another attempt (the job fails at once). */
export function isPermanentFailure(code: ErrorCode, message = ''): boolean {
  if (!RETRYABLE.has(code)) return true;
  return (code === 'SOURCE_UNREADABLE' || code === 'IO') && PERMANENT_SOURCE.test(message);
}

/**
 * When a failed job runs again (docs/DESIGN.md §Job model): retryable failures only (isPermanentFailure), at most
 * `maxAttempts` attempts (restores: one; a half-written target is not retried behind the user's back), exponential
 * backoff. While it waits, the job is shown as `retrying` (jobs/job-state.ts), not `queued`.
 */
export class RetryPolicy {
  constructor(private readonly config: { maxAttempts: number; backoffSeconds: number }) {}

  maxAttempts(kind: JobKind): number {
    return kind === 'restore' || kind === 'restore-vm' ? 1 : this.config.maxAttempts;
  }

  shouldRetry(code: ErrorCode, attempt: number, maxAttempts: number, message = ''): boolean {
    return !isPermanentFailure(code, message) && attempt < maxAttempts;
  }

  /** the wait before attempt `attempt + 1` */
  delayMs(attempt: number): number {
    return this.config.backoffSeconds * 1000 * 2 ** (attempt - 1);
  }
}
