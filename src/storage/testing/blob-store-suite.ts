import assert from 'node:assert/strict';
import { describe, test as nodeTest } from 'node:test';
import { CofferError, type BlobName } from '../../shared/index.js';
import type { BlobStore } from '../blob-store.js';

const n = (s: string) => s as BlobName;

async function collect(it: AsyncIterable<{ name: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const b of it) out.push(b.name);
  return out.sort();
}

export interface SuiteOptions {
  /**
   * Known gaps of an emulator (not of the backend), by test title: the test is skipped with the reason shown.
   * Only for behaviour the emulator cannot provide and that the backend implements against the documented API.
   */
  emulatorGaps?: Record<string, string>;
}

/**
 * The BlobStore contract (storage/blob-store.ts), run against every implementation.
 * `make` returns a fresh, empty store; `cleanup` disposes of it.
 */
export function blobStoreSuite(
  name: string,
  make: () => Promise<{ store: BlobStore; cleanup: () => Promise<void> }>,
  opts: SuiteOptions = {},
): void {
  describe(`BlobStore contract: ${name}`, () => {
    const test = (title: string, fn: () => Promise<void>) => {
      const gap = opts.emulatorGaps?.[title];
      if (gap) nodeTest(title, { skip: `emulator gap: ${gap}` }, fn);
      else nodeTest(title, fn);
    };
    const withStore = (fn: (s: BlobStore) => Promise<void>) => async () => {
      const { store, cleanup } = await make();
      try {
        await fn(store);
      } finally {
        await cleanup();
      }
    };

    test(
      'put then get returns the bytes; stat reports the size',
      withStore(async (s) => {
        const data = Buffer.from('hello, blob');
        assert.equal(await s.put(n('a/b/c'), data), 'created');
        assert.deepEqual(await s.get(n('a/b/c')), data);
        const st = await s.stat(n('a/b/c'));
        assert.equal(st?.sizeBytes, data.length);
        assert.equal(st?.name, 'a/b/c');
      }),
    );

    test(
      'put never overwrites: the second put says exists and the first bytes stay',
      withStore(async (s) => {
        await s.put(n('x'), Buffer.from('first'));
        assert.equal(await s.put(n('x'), Buffer.from('second, longer')), 'exists');
        assert.equal((await s.get(n('x'))).toString(), 'first');
      }),
    );

    test(
      'concurrent puts of one name: exactly one creates',
      withStore(async (s) => {
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => s.put(n('race'), Buffer.from(`writer ${i}`))),
        );
        assert.equal(results.filter((r) => r === 'created').length, 1);
        assert.match((await s.get(n('race'))).toString(), /^writer \d$/);
      }),
    );

    test(
      'empty blobs are stored',
      withStore(async (s) => {
        await s.put(n('empty'), Buffer.alloc(0));
        assert.equal((await s.get(n('empty'))).length, 0);
        assert.equal((await s.stat(n('empty')))?.sizeBytes, 0);
      }),
    );

    test(
      'ranged get; ranges past the end are cut',
      withStore(async (s) => {
        const data = Buffer.from('0123456789');
        await s.put(n('r'), data);
        assert.equal((await s.get(n('r'), { offset: 2, length: 3 })).toString(), '234');
        assert.equal((await s.get(n('r'), { offset: 8, length: 10 })).toString(), '89');
        assert.equal((await s.get(n('r'), { offset: 20, length: 5 })).length, 0);
      }),
    );

    test(
      'missing blobs: get rejects NOT_FOUND, stat is undefined, delete resolves',
      withStore(async (s) => {
        await assert.rejects(s.get(n('nope')), (e: unknown) => e instanceof CofferError && e.code === 'NOT_FOUND');
        assert.equal(await s.stat(n('nope')), undefined);
        await s.delete(n('nope'));
      }),
    );

    test(
      'list by prefix is complete and exact',
      withStore(async (s) => {
        for (const name of ['chunks/aa/1', 'chunks/aa/2', 'chunks/ab/3', 'chunksx', 'points/p1', 'config'])
          await s.put(n(name), Buffer.from(name));
        assert.deepEqual(await collect(s.list('chunks/')), ['chunks/aa/1', 'chunks/aa/2', 'chunks/ab/3']);
        assert.deepEqual(await collect(s.list('chunks/aa/')), ['chunks/aa/1', 'chunks/aa/2']);
        assert.deepEqual(await collect(s.list('chunks')), ['chunks/aa/1', 'chunks/aa/2', 'chunks/ab/3', 'chunksx']);
        assert.deepEqual(await collect(s.list('nothing/')), []);
        assert.equal((await collect(s.list(''))).length, 6);
      }),
    );

    test(
      'delete removes; the name can be put again',
      withStore(async (s) => {
        await s.put(n('d/1'), Buffer.from('one'));
        await s.delete(n('d/1'));
        assert.equal(await s.stat(n('d/1')), undefined);
        assert.deepEqual(await collect(s.list('d/')), []);
        assert.equal(await s.put(n('d/1'), Buffer.from('two')), 'created');
        assert.equal((await s.get(n('d/1'))).toString(), 'two');
      }),
    );

    test(
      'invalid names are refused',
      withStore(async (s) => {
        for (const bad of ['', '/abs', 'a//b', '../up', 'a/../b', '.hidden', 'a/.tmp-x', 'sp ace', 'a/']) {
          await assert.rejects(s.put(n(bad), Buffer.from('x')), CofferError, `name ${JSON.stringify(bad)}`);
        }
      }),
    );

    test(
      'an aborted signal rejects',
      withStore(async (s) => {
        const ac = new AbortController();
        ac.abort();
        await assert.rejects(s.put(n('z'), Buffer.from('x'), { signal: ac.signal }));
        assert.equal(await s.stat(n('z')), undefined);
      }),
    );

    test(
      'large blobs round-trip',
      withStore(async (s) => {
        const big = Buffer.alloc(5 * 1024 * 1024 + 7);
        for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
        await s.put(n('big'), big);
        assert.ok((await s.get(n('big'))).equals(big));
      }),
    );
  });
}
