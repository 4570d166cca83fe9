import { CofferError, exponentialDelay, retry, sleep, type BlobName, type Logger, type Op } from '../shared/index.js';
import type { BlobInfo, BlobStore, ByteRange, RetentionInfo } from './blob-store.js';
import type { CapabilityName, Locking, ServerSideCopy, StoreCapabilities, Tiering } from './capabilities.js';
import { AdaptiveLimit } from './adaptive-limit.js';
import { ForwardingBlobStore } from './forwarding-blob-store.js';

export interface RetryPolicy {
  /** attempts in all, the first included (default 8) */
  attempts?: number;
  /** first backoff (default 250 ms), doubled each time up to maxDelayMs (default 16 s), with +-50% jitter */
  baseDelayMs?: number;
  maxDelayMs?: number;
  logger?: Logger;
  /** injectable for tests */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Requests in flight at most (default 64), adapted to throttling: a 429/503 halves it, successes grow it back
   * (AdaptiveLimit). Put, get, stat and delete count; listings do not (one page at a time).
   */
  maxInFlight?: number;
}

/**
 * Retries TRANSIENT failures (throttling 429/503, 5xx, timeouts, dropped connections) with exponential backoff and
 * jitter; every other code fails at once. The only place in Coffer that retries storage requests.
 * - put: an attempt that failed may have landed; if a retry then finds the name taken, the stored bytes are
 *   compared with ours: equal means our own earlier attempt created it ('created').
 * - list: a listing that fails part-way restarts and skips the names already yielded (stores list in name order).
 * - throttling: every attempt takes a slot of an AdaptiveLimit (one per store): 429/503 halve the requests in flight,
 *   successes grow them again, so a throttled service sees fewer requests, not just later ones.
 */
export class RetryingBlobStore extends ForwardingBlobStore {
  private readonly attempts: number;
  private readonly delayMs: (attempt: number) => number;
  private readonly sleep: ((ms: number, signal?: AbortSignal) => Promise<void>) | undefined;
  /** retries done so far (tests, benchmarks) */
  retries = 0;
  /** the requests in flight to this store, adapted to throttling */
  readonly inFlight: AdaptiveLimit;

  constructor(
    inner: BlobStore,
    private readonly policy: RetryPolicy = {},
  ) {
    super(inner);
    this.attempts = policy.attempts ?? 8;
    this.delayMs = exponentialDelay(policy.baseDelayMs ?? 250, policy.maxDelayMs ?? 16_000, 0.5);
    this.sleep = policy.sleep;
    this.inFlight = new AdaptiveLimit(policy.maxInFlight ?? 64);
  }

  private retry<T>(what: string, op: Op | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retry(
      {
        attempts: this.attempts,
        delayMs: this.delayMs,
        retryable: (e) => e instanceof CofferError && e.code === 'TRANSIENT',
        onRetry: (e, attempt, delay) => {
          this.retries++;
          this.policy.logger?.debug(
            `${what}: ${(e as Error).message}; retry ${attempt}/${this.attempts - 1} in ${Math.round(delay)} ms`,
          );
        },
        ...(this.sleep ? { sleep: this.sleep } : {}),
        onGiveUp: (e, attempt) => {
          if (e instanceof CofferError && e.code === 'TRANSIENT' && attempt > 1) {
            e.details.attempts = attempt;
            if (!e.hint)
              (e as { hint: string | undefined }).hint =
                `gave up after ${attempt} attempts; the service is throttling or unreachable: try again later ` +
                `(committed data is intact)`;
          }
        },
      },
      fn,
      { signal: op?.signal },
    );
  }

  /** Retries `fn`, each attempt in a slot of the adaptive in-flight limit. */
  private call<T>(what: string, op: Op | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    return this.retry(what, op, (attempt) => this.inFlight.run(() => fn(attempt), op?.signal));
  }

  /** Retries an open (e.g. creating the container at init) like any request. */
  retryOpen<T>(fn: () => Promise<T>): Promise<T> {
    return this.retry(`open ${this.location}`, undefined, fn);
  }

  override async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    return this.call(`put ${name}`, op, async (attempt) => {
      const r = await this.inner.put(name, data, op);
      if (r === 'exists' && attempt > 1) {
        // did an earlier attempt of ours land? (its answer was lost)
        const stored = await this.inner.get(name, undefined, op);
        if (Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(stored)) return 'created';
      }
      return r;
    });
  }

  override get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    return this.call(`get ${name}`, op, () => this.inner.get(name, range, op));
  }

  override stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    return this.call(`stat ${name}`, op, () => this.inner.stat(name, op));
  }

  /** Object stores list in name order (Azure, S3): a restarted listing skips up to the last name yielded. */
  override async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
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
        if (!(e instanceof CofferError) || e.code !== 'TRANSIENT' || attempt >= this.attempts || op?.signal?.aborted)
          throw e;
        this.retries++;
        restarted = true;
        const delay = this.delayMs(attempt);
        await (this.sleep ? this.sleep(delay, op?.signal) : sleep(delay, { signal: op?.signal }));
      }
    }
  }

  override delete(name: BlobName, op?: Op): Promise<void> {
    return this.call(`delete ${name}`, op, () => this.inner.delete(name, op));
  }

  override retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const inner = this.inner;
    if (!inner.retention) return Promise.resolve(undefined);
    return this.call(`retention ${name}`, op, () => inner.retention!(name, op));
  }

  /**
   * Every capability of the wrapped store, its requests retried like the others (temp-file sweeping is local: as is).
   */
  override capability<K extends CapabilityName>(key: K): StoreCapabilities[K] | undefined {
    const c = super.capability(key);
    if (!c) return undefined;
    const caps: Partial<StoreCapabilities> = {};
    if (key === 'tiers') {
      const t = c as Tiering;
      caps.tiers = {
        tierOf: (name, op) => this.call(`tier ${name}`, op, () => t.tierOf(name, op)),
        setTier: (name, tier, opts, op) => this.call(`set tier ${name}`, op, () => t.setTier(name, tier, opts, op)),
      };
    } else if (key === 'locks') {
      const l = c as Locking;
      caps.locks = {
        lock: (name, req, op) => this.call(`lock ${name}`, op, () => l.lock(name, req, op)),
        retention: (name, op) => this.call(`retention ${name}`, op, () => l.retention(name, op)),
      };
    } else if (key === 'serverSideCopy') {
      const x = c as ServerSideCopy;
      caps.serverSideCopy = {
        serverSideCopyFrom: (source, name, op) =>
          this.call(`copy ${name}`, op, () => x.serverSideCopyFrom(source, name, op)),
      };
    } else return c;
    return caps[key];
  }
}
