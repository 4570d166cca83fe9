// The BlobStore contract against s3rver (an S3 emulator) in a child process, plus S3-specific errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { openS3Store } from '../src/storage/s3/s3-location.js';
import type { S3BlobStore } from '../src/storage/s3/s3-blob-store.js';
import { CofferError, type BlobName } from '../src/shared/index.js';
import { blobStoreSuite } from '../src/storage/testing/blob-store-suite.js';
import { startS3rver, type OwnedServer } from './helpers/cloud-servers.js';
import { tempDir } from './helpers/cli.js';

let s3: OwnedServer & { endpoint: string; env: Record<string, string> };
const dir = tempDir('coffer-s3rver-');

before(async () => {
  s3 = await startS3rver(dir.path);
});
after(async () => {
  await s3?.stop();
  dir.cleanup();
});

const bucket = () => `b${randomBytes(6).toString('hex')}`;

async function drop(store: S3BlobStore, name: string): Promise<void> {
  const listed = await store.client.send(new ListObjectsV2Command({ Bucket: name }));
  for (const o of listed.Contents ?? [])
    await store.client.send(new DeleteObjectCommand({ Bucket: name, Key: o.Key! }));
  await store.client.send(new DeleteBucketCommand({ Bucket: name }));
}

const GAP = 's3rver ignores If-None-Match: * (TESTBED.md); in ?put=head mode a check-then-put race remains by design';

// s3rver overwrites despite If-None-Match: *, so the suite runs in the HEAD-before-PUT mode; the concurrent
// put-if-absent test cannot pass on it in any mode and is skipped as an emulator gap.
blobStoreSuite(
  's3 (s3rver, put=head)',
  async () => {
    const b = bucket();
    const store = await openS3Store(`s3://${b}?put=head`, s3.env, { create: true });
    return { store, cleanup: () => drop(store, b) };
  },
  { emulatorGaps: { 'concurrent puts of one name: exactly one creates': GAP } },
);

blobStoreSuite(
  's3 (s3rver, put=head) under a prefix',
  async () => {
    const b = bucket();
    const store = await openS3Store(`s3://${b}/a/prefix?put=head`, s3.env, { create: true });
    return { store, cleanup: () => drop(store, b) };
  },
  { emulatorGaps: { 'concurrent puts of one name: exactly one creates': GAP } },
);

const is = (code: string) => (e: unknown) => e instanceof CofferError && e.code === code;

test('s3: the default put sends If-None-Match: * (s3rver ignores it: it overwrites, the documented gap)', async () => {
  const b = bucket();
  const store = await openS3Store(`s3://${b}`, s3.env, { create: true });
  let sawHeader = false;
  store.client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { headers?: Record<string, string> };
      if (req.headers?.['if-none-match'] === '*') sawHeader = true;
      return next(args);
    },
    { step: 'finalizeRequest' },
  );
  await store.put('x' as BlobName, Buffer.from('first'));
  assert.ok(sawHeader);
  await drop(store, b);
});

test('s3: an unknown access key is ACCESS_DENIED (s3rver knows keys but does not check a wrong secret)', async () => {
  const b = bucket();
  await openS3Store(`s3://${b}`, s3.env, { create: true });
  const wrong = await openS3Store(`s3://${b}`, { ...s3.env, AWS_ACCESS_KEY_ID: 'NOBODY' }, { create: false });
  await assert.rejects(wrong.get('config' as BlobName), is('ACCESS_DENIED'));
});

test('s3: a missing bucket is REPO_NOT_FOUND', async () => {
  const s = await openS3Store(`s3://${bucket()}`, s3.env, { create: false });
  await assert.rejects(s.get('config' as BlobName), is('REPO_NOT_FOUND'));
  await assert.rejects(s.put('config' as BlobName, Buffer.from('{}')), is('REPO_NOT_FOUND'));
});

test('s3: a server that is down is TRANSIENT; bad URLs are USAGE', async () => {
  const s = await openS3Store(`s3://${bucket()}?endpoint=${encodeURIComponent('http://127.0.0.1:9')}`, s3.env, {
    create: false,
  });
  await assert.rejects(s.get('config' as BlobName), is('TRANSIENT'));
  for (const bad of ['s3://B', 's3://u:p@bucket', 's3://bucket?put=maybe', 's3://bucket/a//b']) {
    await assert.rejects(openS3Store(bad, s3.env, { create: false }), is('USAGE'), bad);
  }
});
