import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { AppendOnlyBlobStore } from './append-only-blob-store.js';
import { CachingBlobStore } from './caching-blob-store.js';
import { capabilityOf } from './capabilities.js';
import { ForwardingBlobStore, innermost } from './forwarding-blob-store.js';
import { LocalBlobStore } from './local/local-blob-store.js';
import { MemoryBlobStore } from './memory/memory-blob-store.js';
import { RetryingBlobStore } from './retrying-blob-store.js';
import { ArchiveEnforcingBlobStore } from './testing/archive-enforcing-blob-store.js';
import { ThrottledBlobStore } from './throttled-blob-store.js';

const n = (s: string) => s as BlobName;

test(
  'capabilities: a backend has only its own; every wrapper forwards them; ' + 'unwrap/innermost reach the backend',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-fwd-'));
    try {
      const local = new LocalBlobStore(dir);
      assert.ok(capabilityOf(local, 'tempFiles'));
      assert.equal(capabilityOf(local, 'tiers'), undefined);
      assert.equal(capabilityOf(new MemoryBlobStore(), 'tempFiles'), undefined);
      for (const wrapped of [
        new AppendOnlyBlobStore(local),
        new RetryingBlobStore(local),
        new CachingBlobStore(local, dir),
        new ThrottledBlobStore(local, 1e9),
      ]) {
        assert.ok(wrapped instanceof ForwardingBlobStore);
        assert.equal(wrapped.unwrap(), local);
        assert.equal(innermost(new RetryingBlobStore(wrapped)), local);
        assert.ok(capabilityOf(wrapped, 'tempFiles'), `${wrapped.constructor.name} forwards sweepTemp`);
        assert.equal(capabilityOf(wrapped, 'tiers'), undefined);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('capabilities: append-only answers locks itself; throttling hides server-side copy', async () => {
  const mem = new MemoryBlobStore();
  assert.equal(capabilityOf(mem, 'locks'), undefined);
  const ao = new AppendOnlyBlobStore(mem);
  const locks = capabilityOf(ao, 'locks');
  assert.ok(locks);
  await mem.put(n('chunks/ab/x'), Buffer.from('x'));
  assert.deepEqual(await locks.retention(n('chunks/ab/x')), { legalHold: true });
  const copying = Object.assign(new MemoryBlobStore(), {
    capability: (key: string) =>
      key === 'serverSideCopy' ? { serverSideCopyFrom: async () => 'created' as const } : undefined,
  });
  assert.ok(capabilityOf(new RetryingBlobStore(copying), 'serverSideCopy'));
  assert.equal(capabilityOf(new ThrottledBlobStore(copying, 1e9), 'serverSideCopy'), undefined);
});

test('capabilities: the retrying wrapper retries the requests of a capability (tiers) like any other', async () => {
  class FlakyTiers extends ArchiveEnforcingBlobStore {
    failures = 2;
    override async tierOf(name: BlobName, op?: Op) {
      if (this.failures-- > 0) throw new CofferError('TRANSIENT', 'throttled');
      return super.tierOf(name, op);
    }
  }
  const flaky = new FlakyTiers(new MemoryBlobStore());
  await flaky.put(n('chunks/ab/x'), Buffer.from('x'));
  const r = new RetryingBlobStore(flaky, { sleep: async () => undefined });
  const tiers = capabilityOf(r, 'tiers');
  assert.ok(tiers);
  assert.equal((await tiers.tierOf(n('chunks/ab/x')))?.tier, 'Hot');
  assert.equal(r.retries, 2);
});
