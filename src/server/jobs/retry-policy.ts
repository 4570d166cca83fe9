import type { ErrorCode } from '../../shared/index.js';
import type { JobKind } from '../catalog/index.js';

/** Failures worth another attempt (after backoff); the others will fail the same way again. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['TRANSIENT', 'IO', 'LOCKED', 'SOURCE_UNREADABLE', 'PARTIAL']);

/**
 * When a failed job runs again (docs/DESIGN.md §Job model): retryable codes only, at most `maxAttempts` attempts
 * (restores: one; a half-written target is not retried behind the user's back), exponential backoff.
 */
export class RetryPolicy {
  constructor(private readonly config: { maxAttempts: number; backoffSeconds: number }) {}

  maxAttempts(kind: JobKind): number {
    return kind === 'restore' ? 1 : this.config.maxAttempts;
  }

  shouldRetry(code: ErrorCode, attempt: number, maxAttempts: number): boolean {
    return RETRYABLE.has(code) && attempt < maxAttempts;
  }

  /** the wait before attempt `attempt + 1` */
  delayMs(attempt: number): number {
    return this.config.backoffSeconds * 1000 * 2 ** (attempt - 1);
  }
}
