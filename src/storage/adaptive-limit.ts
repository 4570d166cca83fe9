import { CofferError, cancellation } from '../shared/index.js';

/** A request the service refused for load: 429 (Too Many Requests) or 503 (Server Busy / SlowDown). */
export function isThrottle(e: unknown): boolean {
  return e instanceof CofferError && e.code === 'TRANSIENT' && (e.details.status === 429 || e.details.status === 503);
}

/**
 * How many requests one store has in flight, adapting to throttling like TCP's congestion window (additive increase,
 * multiplicative decrease): it starts at `max`; a throttled request (429/503) halves the limit, never below `min`, at
 * most once per round (the throttles of requests that were already in flight when the limit was cut do not cut it
 * again); every `limit` successes add one, up to `max`. Requests over the limit wait (first come, first served).
 * The engine's windows bound memory (how many chunks exist at once); this bounds what the service sees.
 */
export class AdaptiveLimit {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private successes = 0;
  /** requests started since the last cut: a throttle counts only after a full round of the cut limit */
  private startedSinceCut = Number.POSITIVE_INFINITY;
  private limitNow: number;
  /** throttled answers seen, and how often the limit was cut (tests, benchmarks) */
  throttles = 0;
  cuts = 0;
  /** the lowest limit reached */
  lowest: number;

  constructor(
    readonly max = 64,
    readonly min = 1,
  ) {
    this.limitNow = max;
    this.lowest = max;
  }

  get limit(): number {
    return this.limitNow;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Runs `fn` once a slot is free; a 429/503 from it lowers the limit, a success raises it slowly. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      const r = await fn();
      this.onSuccess();
      return r;
    } catch (e) {
      if (isThrottle(e)) this.onThrottle();
      throw e;
    } finally {
      this.release();
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(cancellation(signal));
    if (this.active < this.limitNow && this.waiters.length === 0) {
      this.start();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        this.start();
        resolve();
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(go);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(cancellation(signal));
      };
      this.waiters.push(go);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private start(): void {
    this.active++;
    this.startedSinceCut++;
  }

  private release(): void {
    this.active--;
    while (this.active < this.limitNow && this.waiters.length > 0) this.waiters.shift()!();
  }

  private onSuccess(): void {
    if (this.limitNow >= this.max) return;
    if (++this.successes >= this.limitNow) {
      this.successes = 0;
      this.limitNow++;
    }
  }

  private onThrottle(): void {
    this.throttles++;
    if (this.startedSinceCut < this.limitNow) return; // started before the last cut took effect
    this.limitNow = Math.max(this.min, Math.floor(this.limitNow / 2));
    this.lowest = Math.min(this.lowest, this.limitNow);
    this.successes = 0;
    this.startedSinceCut = 0;
    this.cuts++;
  }
}
