import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { AdaptiveLimit, isThrottle } from './adaptive-limit.js';
import { MemoryBlobStore } from './memory/memory-blob-store.js';
import { RetryingBlobStore } from './retrying-blob-store.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

/**
 * A test double for what no emulator here does: a service that throttles by load, answering 503 ServerBusy to a
 * request that arrives while `capacity` others are in flight (Azure's per-account/partition limits; Azurite never
 * throttles, the fault proxy throttles at random). `capacity` can change during the test.
 */
class BusyStore extends MemoryBlobStore {
  active = 0;
  peak = 0;
  refused = 0;
  constructor(public capacity: number) {
    super();
  }
  override async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    if (this.active >= this.capacity) {
      this.refused++;
      await tick();
      throw new CofferError('TRANSIENT', 'HTTP 503 ServerBusy', { details: { status: 503 } });
    }
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    try {
      await tick();
      await tick();
      return await super.put(name, data, op);
    } finally {
      this.active--;
    }
  }
}

const noWait = async () => undefined;
const names = (from: number, n: number) => Array.from({ length: n }, (_, i) => `chunks/${from + i}` as BlobName);

test('throttling: 429/503 halve the requests in flight, successes grow them back up to the maximum', async () => {
  const busy = new BusyStore(6);
  const store = new RetryingBlobStore(busy, { sleep: noWait, attempts: 30, maxInFlight: 32 });
  // 300 puts at once (the engine's window is larger than what the service takes)
  const r = await Promise.all(names(0, 300).map((n) => store.put(n, Buffer.from(n))));
  assert.ok(r.every((x) => x === 'created'));
  assert.ok(busy.refused > 0, 'the service throttled');
  assert.ok(store.inFlight.cuts > 0 && store.inFlight.lowest <= 6, `limit went down to ${store.inFlight.lowest}`);
  const refusedWhileLimited = busy.refused;
  // the service has room again: the limit grows back, one per round of successes
  busy.capacity = 1000;
  for (let round = 0; round < 60 && store.inFlight.limit < 32; round++)
    await Promise.all(names(1000 + round * 64, 64).map((n) => store.put(n, Buffer.from(n))));
  assert.equal(store.inFlight.limit, 32, 'grown back to the maximum');
  assert.equal(busy.refused, refusedWhileLimited);
  assert.equal(store.inFlight.inFlight, 0);
});

test('throttling: the limit bounds concurrent requests and never goes below the minimum', async () => {
  const limit = new AdaptiveLimit(4, 2);
  let active = 0;
  let peak = 0;
  const throttle = new CofferError('TRANSIENT', 'HTTP 429', { details: { status: 429 } });
  const job = (fail: boolean) =>
    limit.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await tick();
      active--;
      if (fail) throw throttle;
    });
  await Promise.allSettled(Array.from({ length: 40 }, (_, i) => job(i % 2 === 0)));
  assert.ok(peak <= 4);
  assert.equal(limit.limit >= 2, true);
  assert.equal(limit.lowest, 2);
  assert.ok(limit.cuts >= 1);
  // a timeout or a reset is TRANSIENT but not throttling: no cut
  assert.equal(isThrottle(new CofferError('TRANSIENT', 'reset')), false);
  assert.equal(isThrottle(throttle), true);
});

test('throttling: a cancelled request waiting for a slot rejects CANCELLED, holds no slot', async () => {
  const limit = new AdaptiveLimit(1);
  let release!: () => void;
  const holding = limit.run(() => new Promise<void>((r) => (release = r)));
  const ac = new AbortController();
  const waiting = limit.run(async () => 'ran', ac.signal);
  ac.abort();
  await assert.rejects(waiting, (e) => e instanceof CofferError && e.code === 'CANCELLED');
  release();
  await holding;
  assert.equal(await limit.run(async () => 'next'), 'next');
  assert.equal(limit.inFlight, 0);
});
