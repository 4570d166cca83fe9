import { CofferError, type Op } from '../shared/index.js';

/**
 * The signal of one request to a storage service: the caller's signal (cancel: CANCELLED) joined with a per-request
 * timeout (TRANSIENT: a hung connection is retried by RetryingBlobStore, not waited on forever).
 */
export function requestSignal(op: Op | undefined, timeoutMs: number): { signal: AbortSignal; timedOut: () => boolean } {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = op?.signal ? AbortSignal.any([op.signal, timeout]) : timeout;
  return { signal, timedOut: () => timeout.aborted && !op?.signal?.aborted };
}

/** The error for a request that ended because its signal fired. */
export function abortError(op: Op | undefined, what: string, timeoutMs: number, cause?: unknown): CofferError {
  if (op?.signal?.aborted) {
    const r: unknown = op.signal.reason;
    return r instanceof CofferError ? r : new CofferError('CANCELLED', 'cancelled', { cause });
  }
  return new CofferError('TRANSIENT', `${what}: no answer within ${timeoutMs} ms`, { cause, details: { timeoutMs } });
}
