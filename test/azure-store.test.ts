// The BlobStore contract against a real Azurite (Azure Blob emulator), plus Azure-specific errors.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AzureBlobStore } from '../src/storage/azure/azure-blob-store.js';
import { openAzureStore } from '../src/storage/azure/azure-location.js';
import { CofferError, type BlobName } from '../src/shared/index.js';
import { blobStoreSuite } from '../src/storage/testing/blob-store-suite.js';
import { AZURITE_ACCOUNT, startAzurite, type OwnedServer } from './helpers/cloud-servers.js';
import { tempDir } from './helpers/cli.js';

let azurite: OwnedServer & { endpoint: string; connectionString: string };
const dir = tempDir('coffer-azurite-');

before(async () => {
  azurite = await startAzurite(dir.path);
});
after(async () => {
  await azurite?.stop();
  dir.cleanup();
});

const env = () => ({ AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });
const container = () => `c${randomBytes(6).toString('hex')}`;

blobStoreSuite('azure (Azurite)', async () => {
  const store = await openAzureStore(`azure://${AZURITE_ACCOUNT}/${container()}`, env(), { create: true });
  return { store, cleanup: async () => void (await store.container.deleteIfExists()) };
});

blobStoreSuite('azure (Azurite) under a prefix', async () => {
  const store = await openAzureStore(`azure://${AZURITE_ACCOUNT}/${container()}/some/prefix`, env(), { create: true });
  return { store, cleanup: async () => void (await store.container.deleteIfExists()) };
});

const is = (code: string) => (e: unknown) => e instanceof CofferError && e.code === code;

test('azure: a wrong account key is ACCESS_DENIED, not a retryable error', async () => {
  const name = container();
  await openAzureStore(`azure://${AZURITE_ACCOUNT}/${name}`, env(), { create: true });
  const wrong = await openAzureStore(
    `azure://${AZURITE_ACCOUNT}/${name}?endpoint=${encodeURIComponent(azurite.endpoint)}`,
    {
      AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
      AZURE_STORAGE_KEY: randomBytes(64).toString('base64'),
    },
    { create: false },
  );
  await assert.rejects(wrong.get('config' as BlobName), is('ACCESS_DENIED'));
  await assert.rejects(wrong.put('x' as BlobName, Buffer.from('x')), is('ACCESS_DENIED'));
});

test('azure: a missing container is REPO_NOT_FOUND on every operation', async () => {
  const s = await openAzureStore(`azure://${AZURITE_ACCOUNT}/${container()}`, env(), { create: false });
  await assert.rejects(s.get('config' as BlobName), is('REPO_NOT_FOUND'));
  await assert.rejects(s.put('config' as BlobName, Buffer.from('{}')), is('REPO_NOT_FOUND'));
  await assert.rejects(async () => {
    for await (const _ of s.list('points/')) void _;
  }, is('REPO_NOT_FOUND'));
});

test('azure: a server that is down is TRANSIENT (retryable)', async () => {
  const s = await openAzureStore(
    `azure://${AZURITE_ACCOUNT}/${container()}?endpoint=${encodeURIComponent('http://127.0.0.1:9/devstoreaccount1')}`,
    env(),
    { create: false },
  );
  await assert.rejects(s.get('config' as BlobName), is('TRANSIENT'));
});

test('azure: bad URLs are USAGE errors', async () => {
  for (const bad of [
    'azure://UPPER/c',
    'azure://acct/x',
    'azure://acct/Bad_Container',
    'azure://user:pw@acct/cont',
    'azure://acct/cont?nope=1',
    'azure://acct/cont/a//b',
  ]) {
    await assert.rejects(openAzureStore(bad, env(), { create: false }), is('USAGE'), bad);
  }
});

test('azure: listing follows continuation tokens page by page', async () => {
  const base = await openAzureStore(`azure://${AZURITE_ACCOUNT}/${container()}`, env(), { create: true });
  const s = new AzureBlobStore(base.container, { location: base.location, listPageSize: 3 });
  const names = Array.from({ length: 11 }, (_, i) => `p/${String(i).padStart(2, '0')}`);
  await Promise.all(names.map((x) => s.put(x as BlobName, Buffer.alloc(0))));
  await s.put('q' as BlobName, Buffer.alloc(0));
  const seen: string[] = [];
  for await (const b of s.list('p/')) seen.push(b.name);
  assert.deepEqual(seen, names);
  await s.container.deleteIfExists();
});
