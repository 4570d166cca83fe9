import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import type { BlobInfo, BlobStore } from './blob-store.js';
import { MemoryBlobStore } from './memory/memory-blob-store.js';
import { RetryingBlobStore } from './retrying-blob-store.js';
import { blobStoreSuite } from './testing/blob-store-suite.js';

const n = (s: string) => s as BlobName;
const noSleep = async () => undefined;

/** Fails the next `failures` calls of the named method with `code`; `landed`: a failing put still stores. */
class Flaky extends MemoryBlobStore {
  failures: Record<string, number> = {};
  code: 'TRANSIENT' | 'IO' | 'ACCESS_DENIED' = 'TRANSIENT';
  landed = false;
  calls: Record<string, number> = {};
  private hit(m: string): void {
    this.calls[m] = (this.calls[m] ?? 0) + 1;
    if ((this.failures[m] ?? 0) > 0) {
      this.failures[m]!--;
      throw new CofferError(this.code, `injected ${m} failure`);
    }
  }
  override async put(name: BlobName, data: Uint8Array, op?: Op) {
    if ((this.failures.put ?? 0) > 0 && this.landed) await super.put(name, data, op);
    this.hit('put');
    return super.put(name, data, op);
  }
  override async get(name: BlobName, range?: { offset: number; length: number }, op?: Op) {
    this.hit('get');
    return super.get(name, range, op);
  }
  listFailAfter = -1;
  override async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    const all: BlobInfo[] = [];
    for await (const b of super.list(prefix, op)) all.push(b);
    all.sort((a, b) => (a.name < b.name ? -1 : 1));
    let i = 0;
    for (const b of all) {
      if (i++ === this.listFailAfter) {
        this.listFailAfter = -1;
        throw new CofferError('TRANSIENT', 'listing cut');
      }
      yield b;
    }
  }
}

blobStoreSuite('retrying wrapper over memory', async () => ({
  store: new RetryingBlobStore(new MemoryBlobStore(), { sleep: noSleep }),
  cleanup: async () => undefined,
}));

test('retrying: TRANSIENT is retried with growing delays, other codes fail at once', async () => {
  const inner = new Flaky();
  const delays: number[] = [];
  const s = new RetryingBlobStore(inner, { sleep: async (ms) => void delays.push(ms), baseDelayMs: 100 });
  inner.failures.put = 3;
  assert.equal(await s.put(n('a'), Buffer.from('x')), 'created');
  assert.equal(inner.calls.put, 4);
  assert.equal(delays.length, 3);
  assert.ok(delays[0]! >= 50 && delays[0]! <= 150 && delays[2]! >= 200 && delays[2]! <= 600, String(delays));
  for (const code of ['IO', 'ACCESS_DENIED'] as const) {
    inner.code = code;
    inner.failures.get = 1;
    inner.calls.get = 0;
    await assert.rejects(s.get(n('a')), (e: unknown) => e instanceof CofferError && e.code === code);
    assert.equal(inner.calls.get, 1);
  }
});

test('retrying: gives up after the attempts with TRANSIENT, a hint and the count', async () => {
  const inner = new Flaky();
  const s = new RetryingBlobStore(inner, { sleep: noSleep, attempts: 3 });
  inner.failures.get = 10;
  await s.put(n('a'), Buffer.from('x'));
  await assert.rejects(
    s.get(n('a')),
    (e: unknown) =>
      e instanceof CofferError && e.code === 'TRANSIENT' && e.details.attempts === 3 && /gave up/.test(e.hint ?? ''),
  );
});

test(
  "retrying: a put whose lost answer had landed counts as created; someone else's blob stays " + '"exists"',
  async () => {
    const inner = new Flaky();
    const s = new RetryingBlobStore(inner, { sleep: noSleep });
    inner.landed = true;
    inner.failures.put = 1;
    assert.equal(await s.put(n('m'), Buffer.from('mine')), 'created');
    await inner.put(n('other'), Buffer.from('theirs'));
    inner.failures.put = 1;
    assert.equal(await s.put(n('other'), Buffer.from('mine')), 'exists');
    assert.equal((await s.get(n('other'))).toString(), 'theirs');
  },
);

test('retrying: a listing cut part-way resumes without duplicates or gaps', async () => {
  const inner = new Flaky();
  const s: BlobStore = new RetryingBlobStore(inner, { sleep: noSleep });
  for (let i = 0; i < 10; i++) await inner.put(n(`p/${i}`), Buffer.alloc(0));
  inner.listFailAfter = 4;
  const seen: string[] = [];
  for await (const b of s.list('p/')) seen.push(b.name);
  assert.deepEqual(
    seen,
    Array.from({ length: 10 }, (_, i) => `p/${i}`),
  );
});
