import { CofferError, type BlobName, type Logger, type Op } from '../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, RetentionInfo } from './blob-store.js';
import type { AccessTier, LockRequest, RehydratePriority, ServerSideCopy, TierInfo } from './cloud-store.js';

export interface RetryPolicy {
  /** attempts in all, the first included (default 8) */
  attempts?: number;
  /** first backoff (default 250 ms), doubled each time up to maxDelayMs (default 16 s), with +-50% jitter */
  baseDelayMs?: number;
  maxDelayMs?: number;
  logger?: Logger;
  /** injectable for tests */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Retries TRANSIENT failures (throttling 429/503, 5xx, timeouts, dropped connections) with exponential backoff and
 * jitter; every other code fails at once. The only place in Coffer that retries storage requests.
 * - put: an attempt that failed may have landed; if a retry then finds the name taken, the stored bytes are
 *   compared with ours: equal means our own earlier attempt created it ('created').
 * - list: a listing that fails part-way restarts and skips the names already yielded (stores list in name order).
 */
export class RetryingBlobStore implements BlobStore {
  readonly location: string;
  readonly tiered?: true;
  readonly locking?: true;
  private readonly attempts: number;
  private readonly base: number;
  private readonly max: number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** retries done so far (tests, benchmarks) */
  retries = 0;

  constructor(
    readonly inner: BlobStore,
    private readonly policy: RetryPolicy = {},
  ) {
    this.location = inner.location;
    this.attempts = policy.attempts ?? 8;
    this.base = policy.baseDelayMs ?? 250;
    this.max = policy.maxDelayMs ?? 16_000;
    this.sleep = policy.sleep ?? sleepMs;
    const x = inner as unknown as Record<string, unknown>;
    if (x.tiered === true) this.tiered = true;
    if (x.locking === true) this.locking = true;
  }

  private async retry<T>(what: string, op: Op | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (e) {
        if (!(e instanceof CofferError) || e.code !== 'TRANSIENT' || attempt >= this.attempts || op?.signal?.aborted) {
          if (e instanceof CofferError && e.code === 'TRANSIENT' && attempt > 1) {
            e.details.attempts = attempt;
            if (!e.hint) (e as { hint: string | undefined }).hint = `gave up after ${attempt} attempts; the service is throttling or unreachable: try again later (committed data is intact)`;
          }
          throw e;
        }
        const delay = Math.min(this.max, this.base * 2 ** (attempt - 1)) * (0.5 + Math.random());
        this.retries++;
        this.policy.logger?.debug(`${what}: ${e.message}; retry ${attempt}/${this.attempts - 1} in ${Math.round(delay)} ms`);
        await this.sleep(delay, op?.signal);
      }
    }
  }

  /** Retries an open (e.g. creating the container at init) like any request. */
  retryOpen<T>(fn: () => Promise<T>): Promise<T> {
    return this.retry(`open ${this.location}`, undefined, fn);
  }

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.retry(`put ${name}`, op, async (attempt) => {
      const r = await this.inner.put(name, data, op);
      if (r === 'exists' && attempt > 1) {
        // did an earlier attempt of ours land? (its answer was lost)
        const stored = await this.inner.get(name, undefined, op);
        if (Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(stored)) return 'created';
      }
      return r;
    });
  }

  get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    return this.retry(`get ${name}`, op, () => this.inner.get(name, range, op));
  }

  stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    return this.retry(`stat ${name}`, op, () => this.inner.stat(name, op));
  }

  /** Object stores list in name order (Azure, S3): a restarted listing skips up to the last name yielded. */
  async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    let last: string | undefined;
    let restarted = false;
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const b of this.inner.list(prefix, op)) {
          if (restarted && last !== undefined && b.name <= last) continue;
          last = b.name;
          yield b;
        }
        return;
      } catch (e) {
        if (!(e instanceof CofferError) || e.code !== 'TRANSIENT' || attempt >= this.attempts || op?.signal?.aborted) throw e;
        this.retries++;
        restarted = true;
        await this.sleep(Math.min(this.max, this.base * 2 ** (attempt - 1)) * (0.5 + Math.random()), op?.signal);
      }
    }
  }

  delete(name: BlobName, op?: Op): Promise<void> {
    return this.retry(`delete ${name}`, op, () => this.inner.delete(name, op));
  }

  retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const inner = this.inner;
    if (!inner.retention) return Promise.resolve(undefined);
    return this.retry(`retention ${name}`, op, () => inner.retention!(name, op));
  }

  lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    const inner = this.inner as unknown as { lock(n: BlobName, r: LockRequest, op?: Op): Promise<void> };
    return this.retry(`lock ${name}`, op, () => inner.lock(name, req, op));
  }

  serverSideCopyFrom(source: BlobStore, name: BlobName, op?: Op): Promise<'created' | 'exists' | undefined> {
    const inner = this.inner as Partial<ServerSideCopy>;
    if (!inner.serverSideCopyFrom) return Promise.resolve(undefined);
    return this.retry(`copy ${name}`, op, () => inner.serverSideCopyFrom!(source, name, op));
  }

  tierOf(name: BlobName, op?: Op): Promise<TierInfo | undefined> {
    const inner = this.inner as unknown as { tierOf(n: BlobName, op?: Op): Promise<TierInfo | undefined> };
    return this.retry(`tier ${name}`, op, () => inner.tierOf(name, op));
  }

  setTier(name: BlobName, tier: AccessTier, opts?: { priority?: RehydratePriority }, op?: Op): Promise<void> {
    const inner = this.inner as unknown as { setTier(n: BlobName, t: AccessTier, o?: { priority?: RehydratePriority }, op?: Op): Promise<void> };
    return this.retry(`set tier ${name}`, op, () => inner.setTier(name, tier, opts, op));
  }
}

function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason instanceof CofferError ? signal.reason : new CofferError('CANCELLED', 'cancelled'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason instanceof CofferError ? signal!.reason : new CofferError('CANCELLED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
