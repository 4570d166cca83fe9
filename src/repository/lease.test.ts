import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ForwardingBlobStore, MemoryBlobStore } from '../storage/index.js';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { Lease, readLeases } from './lease.js';

/** A store whose deletes wait for the test to let them through (or fail). */
class GatedDeletes extends ForwardingBlobStore {
  held: { name: string; go: () => void; fail: () => void }[] = [];
  failNext = 0;
  override delete(name: BlobName, op?: Op): Promise<void> {
    if (!name.startsWith('locks/')) return super.delete(name, op);
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new CofferError('TRANSIENT', 'simulated failure of a delete'));
    }
    return new Promise((resolve, reject) => {
      this.held.push({
        name,
        go: () => super.delete(name, op).then(resolve, reject),
        fail: () => reject(new CofferError('TRANSIENT', 'simulated failure of a delete')),
      });
    });
  }
}

async function lockNames(store: MemoryBlobStore): Promise<string[]> {
  const names: string[] = [];
  for await (const b of store.list('locks/')) names.push(b.name);
  return names.sort();
}

test('a lease update resolves once the new blob is stored; the superseded one is deleted after', {
  timeout: 10_000,
}, async () => {
  const mem = new MemoryBlobStore();
  const store = new GatedDeletes(mem);
  const lease = await Lease.acquire(store, 'vm-x', 'backup');
  // resolves although the delete of blob 0 is still held: nothing waits for it
  await lease.update({ operation: 'backup (seen gc)', gcSeen: ['g1'] });
  assert.equal(store.held.length, 1);
  assert.match(store.held[0]!.name, /-000000$/);
  const both = await lockNames(mem);
  assert.equal(both.length, 2, 'both blobs are there meanwhile');
  // readers take both blobs of one holder as one lease, with the newest content
  const leases = await readLeases(mem, 'vm-x');
  assert.equal(new Set(leases.map((l) => l.info?.holder)).size, 1);
  assert.ok(leases.some((l) => l.info?.operation === 'backup (seen gc)'));
  // the next write waits for the pending delete (writes stay serialized)
  const next = lease.update({ operation: 'backup (2)' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.held.length, 1, 'the next put waits for the delete before it');
  store.held.shift()!.go();
  await next;
  assert.equal(store.held.length, 1);
  store.held.shift()!.go();
  const release = lease.release();
  await new Promise((r) => setTimeout(r, 20));
  for (const h of store.held.splice(0)) h.go();
  await release;
  assert.deepEqual(await lockNames(mem), []);
});

test('a superseded lease blob that cannot be deleted: a warning, and release tries again', {
  timeout: 10_000,
}, async () => {
  const mem = new MemoryBlobStore();
  const store = new GatedDeletes(mem);
  const warnings: string[] = [];
  const logger = { info() {}, debug() {}, warn: (m: string) => warnings.push(m) };
  const lease = await Lease.acquire(store, 'vm-y', 'backup', { logger });
  store.failNext = 1;
  await lease.update({ gcSeen: ['g1'] });
  // let the failed delete settle
  await lease.update({ operation: 'again' });
  for (const h of store.held.splice(0)) h.go();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(
    warnings.some((w) => /could not delete the superseded lock .*-000000/.test(w)),
    JSON.stringify(warnings),
  );
  assert.equal((await lockNames(mem)).length, 2, 'the undeleted blob 0 and the current one');
  const release = lease.release();
  await new Promise((r) => setTimeout(r, 20));
  for (const h of store.held.splice(0)) h.go();
  await release;
  assert.deepEqual(await lockNames(mem), [], 'release removed the leftover too: no lock outlives its holder');
});
