// Object Lock paths of the S3 store, which s3rver cannot exercise (501): a stub client answering like S3 does for a
// versioned bucket with Object Lock (a test double for responses the emulator cannot give).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import { CofferError, type BlobName } from '../../shared/index.js';
import { translateAzureError } from '../azure/azure-errors.js';
import { S3BlobStore } from './s3-blob-store.js';

function stub(head: Record<string, unknown> | 'missing') {
  const sent: { name: string; input: Record<string, unknown> }[] = [];
  const client = {
    async send(cmd: { constructor: { name: string }; input: Record<string, unknown> }) {
      sent.push({ name: cmd.constructor.name, input: cmd.input });
      if (cmd.constructor.name === 'HeadObjectCommand') {
        if (head === 'missing')
          throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
        return head;
      }
      return {};
    },
  } as unknown as S3Client;
  return { store: new S3BlobStore(client, { bucket: 'b', location: 's3://b' }), sent };
}

test('s3 delete: a retention date in the future or a legal hold is IMMUTABLE and nothing is deleted', async () => {
  for (const head of [
    { ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000), VersionId: 'v1' },
    { ObjectLockLegalHoldStatus: 'ON', VersionId: 'v1' },
  ]) {
    const { store, sent } = stub(head);
    await assert.rejects(
      store.delete('chunks/aa/x' as BlobName),
      (e: unknown) => e instanceof CofferError && e.code === 'IMMUTABLE',
    );
    assert.deepEqual(
      sent.map((s) => s.name),
      ['HeadObjectCommand'],
    );
    assert.ok(await store.retention('chunks/aa/x' as BlobName));
  }
});

test(
  's3 delete: an unlocked (or expired) object is deleted by version, ' + 'not hidden behind a delete marker',
  async () => {
    const { store, sent } = stub({ ObjectLockRetainUntilDate: new Date(Date.now() - 1000), VersionId: 'v7' });
    await store.delete('points/p' as BlobName);
    assert.deepEqual(
      sent.map((s) => s.name),
      ['HeadObjectCommand', 'DeleteObjectCommand'],
    );
    assert.equal(sent[1]!.input.VersionId, 'v7');
    assert.equal(await store.retention('points/p' as BlobName), undefined);
    const missing = stub('missing');
    await missing.store.delete('points/q' as BlobName);
    assert.deepEqual(
      missing.sent.map((s) => s.name),
      ['HeadObjectCommand'],
    );
  },
);

test('s3 lock: COMPLIANCE retention and a legal hold are requested', async () => {
  const { store, sent } = stub({});
  const until = new Date(Date.now() + 86_400_000);
  await store.lock('points/p' as BlobName, { until, legalHold: true });
  assert.deepEqual(
    sent.map((s) => s.name),
    ['PutObjectRetentionCommand', 'PutObjectLegalHoldCommand'],
  );
  assert.deepEqual(sent[0]!.input.Retention, { Mode: 'COMPLIANCE', RetainUntilDate: until });
  assert.deepEqual(sent[1]!.input.LegalHold, { Status: 'ON' });
});

test(
  'azure errors: immutability conflicts are IMMUTABLE, archived reads ARCHIVED, ' + '503 TRANSIENT, 501 not retried',
  () => {
    const e = (statusCode: number, code: string) =>
      translateAzureError(Object.assign(new Error(code), { name: 'RestError', statusCode, code }), 'azure://a/c', 'x');
    assert.equal(e(409, 'BlobImmutableDueToPolicy').code, 'IMMUTABLE');
    assert.equal(e(409, 'BlobImmutableDueToLegalHold').code, 'IMMUTABLE');
    assert.equal(e(409, 'BlobArchived').code, 'ARCHIVED');
    assert.equal(e(503, 'ServerBusy').code, 'TRANSIENT');
    assert.equal(e(429, 'TooManyRequests').code, 'TRANSIENT');
    assert.equal(e(501, 'NotImplemented').code, 'IO');
    assert.equal(e(403, 'AuthenticationFailed').code, 'ACCESS_DENIED');
    assert.equal(e(404, 'ContainerNotFound').code, 'REPO_NOT_FOUND');
    assert.equal(e(404, 'BlobNotFound').code, 'NOT_FOUND');
  },
);
