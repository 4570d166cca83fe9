import { CofferError } from './errors.js';

/** The error an aborted wait rejects with: the signal's reason when it is a CofferError, else CANCELLED. */
export function cancellation(signal: AbortSignal | undefined): CofferError {
  const reason: unknown = signal?.reason;
  return reason instanceof CofferError ? reason : new CofferError('CANCELLED', 'cancelled');
}

/** Waits `ms`; an abort of `signal` (before or during the wait) rejects at once (see cancellation). */
export function sleep(ms: number, opts: { signal?: AbortSignal | undefined } = {}): Promise<void> {
  const signal = opts.signal;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancellation(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(cancellation(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetrySchedule {
  /** attempts in all, the first included */
  attempts: number;
  /** wait after failed attempt `attempt` (1-based), in ms */
  delayMs: (attempt: number) => number;
  /** whether a failure is worth another attempt (default: every failure) */
  retryable?: (e: unknown, attempt: number) => boolean;
  /** called before each wait (logging, counting) */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
  /** called with the failure that ends the retrying (not retryable, attempts used up, or aborted) */
  onGiveUp?: (e: unknown, attempt: number) => void;
  /** injectable wait (tests); default `sleep` */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Exponential backoff: `baseMs * 2^(attempt-1)`, capped at `maxMs`, times a jitter factor in [1-jitter, 1+jitter). */
export function exponentialDelay(baseMs: number, maxMs = Infinity, jitter = 0): (attempt: number) => number {
  return (attempt) =>
    Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (jitter > 0 ? 1 - jitter + 2 * jitter * Math.random() : 1);
}

/**
 * Runs `fn` until it resolves, a failure is not retryable, or the attempts are used up (the last failure is thrown).
 * An abort stops at once: no attempt starts after it, and a wait in progress rejects (see sleep).
 */
export async function retry<T>(
  policy: RetrySchedule,
  fn: (attempt: number) => Promise<T>,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<T> {
  const wait = policy.sleep ?? ((ms: number, signal?: AbortSignal) => sleep(ms, { signal }));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= policy.attempts || opts.signal?.aborted || (policy.retryable && !policy.retryable(e, attempt))) {
        policy.onGiveUp?.(e, attempt);
        throw e;
      }
      const delay = policy.delayMs(attempt);
      policy.onRetry?.(e, attempt, delay);
      await wait(delay, opts.signal);
    }
  }
}
