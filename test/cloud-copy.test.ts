// Backup copy between two "regions": two Azurite processes, each its own storage service.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AccountSASPermissions,
  ContainerClient,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
} from '@azure/storage-blob';
import { startAzurite } from './helpers/cloud-servers.js';
import { coffer, cofferAsync, json, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { assertSameBytes, expectError, expectOk, fastPrng, makeRandomDisk } from './helpers/more-cli.js';

const KDF = ['--kdf-cost', '1024'];
const OTHER_PASSWORD = 'the other region has another password';
const EAST = 'eastregion';
const EAST_KEY = Buffer.alloc(64, 'east').toString('base64');
const BACKUP = 'eastbackup';
const BACKUP_KEY = Buffer.alloc(64, 'backup').toString('base64');
const WEST = 'westregion';

/** An account SAS for the backup account (what an operator would hand out instead of the key). */
function backupSas(): string {
  return generateAccountSASQueryParameters(
    {
      expiresOn: new Date(Date.now() + 3_600_000),
      permissions: AccountSASPermissions.parse('rwdlacup'),
      resourceTypes: 'sco',
      services: 'b',
    },
    new StorageSharedKeyCredential(BACKUP, BACKUP_KEY),
  ).toString();
}
const WEST_KEY = Buffer.alloc(64, 'west').toString('base64');

describe('coffer copy between two Azurite regions', () => {
  const dir = tempDir('coffer-copy-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let east: Awaited<ReturnType<typeof startAzurite>>;
  let west: Awaited<ReturnType<typeof startAzurite>>;
  const disk = join(dir.path, 'disk.raw');
  const disk2 = join(dir.path, 'disk-v2.raw');
  const other = join(dir.path, 'other.raw');
  const big = join(dir.path, 'big.raw');
  // Two accounts, two credentials: the connection string names west's account, the account key east's.
  const env = {
    AZURE_STORAGE_ACCOUNT: EAST,
    AZURE_STORAGE_KEY: EAST_KEY,
    AZURE_STORAGE_CONNECTION_STRING: '',
  };
  const at = (s: { endpoint: string; port: number }, container: string) =>
    s === east
      ? `azure://${EAST}/${container}?endpoint=${encodeURIComponent(`http://127.0.0.1:${s.port}/${EAST}`)}`
      : `azure://${WEST}/${container}?endpoint=${encodeURIComponent(`http://127.0.0.1:${s.port}/${WEST}`)}`;
  let src: string;
  let p1: { id: string };
  let p2: { id: string };
  let p3: { id: string };

  before(async () => {
    // Two accounts (as in Azure, where names are global): Azurite takes a copy source URL naming one of its own
    // accounts (every Azurite has devstoreaccount1) for a local blob.
    [east, west] = await Promise.all([
      startAzurite(join(dir.path, 'east'), { accounts: `${EAST}:${EAST_KEY};${BACKUP}:${BACKUP_KEY}` }),
      startAzurite(join(dir.path, 'west'), { accounts: `${WEST}:${WEST_KEY}` }),
    ]);
    makeRandomDisk(disk, 4 * 1024 * 1024, 'copy');
    copyFileSync(disk, disk2);
    writeFileSync(disk2, fastPrng('changed', 1024 * 1024), { flag: 'r+' }); // first chunk changed
    makeRandomDisk(other, 2 * 1024 * 1024, 'copy-other');
    makeRandomDisk(big, 24 * 1024 * 1024, 'copy-big');
    env.AZURE_STORAGE_CONNECTION_STRING = `DefaultEndpointsProtocol=http;AccountName=${WEST};AccountKey=${WEST_KEY};BlobEndpoint=http://127.0.0.1:${west.port}/${WEST};`;
    src = at(east, 'primary');
    expectOk(coffer(['init', '--repo', src, '--json', ...KDF], env));
    p1 = expectOk(coffer(['backup', '--repo', src, '--vm', 'vm1', disk, '--json'], env));
    p2 = expectOk(coffer(['backup', '--repo', src, '--vm', 'vm1', disk2, '--json'], env));
    p3 = expectOk(coffer(['backup', '--repo', src, '--vm', 'vm2', other, '--json'], env));
  });
  after(async () => {
    await Promise.all([east?.stop(), west?.stop()]);
    dir.cleanup();
  });

  test('to a repository with other keys: re-encrypted, only missing chunks move, reruns skip, restores are bit-exact', () => {
    const dst = at(west, 'secondary');
    expectOk(coffer(['init', '--repo', dst, '--json', ...KDF], { ...env, COFFER_PASSWORD: OTHER_PASSWORD }));
    const cenv = { ...env, COFFER_TO_PASSWORD: OTHER_PASSWORD };
    // the newest point of vm1 first
    const a = expectOk(coffer(['copy', '--from', src, '--to', dst, '--vm', 'vm1', '--latest', '--json'], cenv));
    assert.equal(a.mode, 're-encrypt');
    assert.deepEqual(
      a.points.map((p: { id: string }) => p.id),
      [p2.id],
    );
    assert.equal(a.points[0].chunksCopied, 4);
    // then everything: p1 shares 3 of its 4 chunks with p2, which the target has (known from p2's two indexes)
    const b = expectOk(coffer(['copy', '--from', src, '--to', dst, '--json'], cenv));
    const byId = new Map(
      b.points.map((p: { id: string; status: string; chunksCopied: number; chunksPresent: number }) => [p.id, p]),
    );
    assert.deepEqual(byId.get(p1.id), {
      ...(byId.get(p1.id) as object),
      status: 'copied',
      chunksCopied: 1,
      chunksPresent: 3,
    });
    assert.equal((byId.get(p2.id) as { status: string }).status, 'present');
    assert.equal((byId.get(p3.id) as { status: string }).status, 'copied');
    // the target opens with its own password only; the points keep their ids; restores are bit-exact
    expectError(coffer(['list', '--repo', dst, '--json'], env), 5, 'WRONG_KEY');
    const list = expectOk(coffer(['list', '--repo', dst, '--json'], { ...env, COFFER_PASSWORD: OTHER_PASSWORD }));
    assert.deepEqual(new Set(list.map((p: { id: string }) => p.id)), new Set([p1.id, p2.id, p3.id]));
    assert.equal(
      list.find((p: { id: string }) => p.id === p2.id).parent,
      p1.id,
      'the parent is history: kept as in the source',
    );
    for (const [id, file] of [
      [p1.id, disk],
      [p2.id, disk2],
      [p3.id, other],
    ] as const) {
      const out = join(dir.path, `restored-${id}`);
      expectOk(
        coffer(['restore', '--repo', dst, id, '--disk', '0', '--target', out, '--json'], {
          ...env,
          COFFER_PASSWORD: OTHER_PASSWORD,
        }),
      );
      assertSameBytes(out, file);
    }
    const v = expectOk(
      coffer(['verify', '--repo', dst, '--read-data', '--json'], { ...env, COFFER_PASSWORD: OTHER_PASSWORD }),
    );
    assert.equal(v.ok, true);
    const again = expectOk(coffer(['copy', '--from', src, '--to', dst, '--json'], cenv));
    assert.ok(again.points.every((p: { status: string }) => p.status === 'present'));
  });

  test('a replica (init --copy-of) in another account of the same service: chunks copied server-side', () => {
    // Copy Blob From URL needs a service that can read the source: Azurite copies only between accounts of one
    // instance, so the replica lives in a second account of east's instance, reached with an account SAS.
    const dst = `azure://${BACKUP}/replica?endpoint=${encodeURIComponent(`http://127.0.0.1:${east.port}/${BACKUP}`)}`;
    const renv = { ...env, AZURE_STORAGE_SAS_TOKEN: backupSas() };
    expectOk(coffer(['init', '--repo', dst, '--copy-of', src, '--json'], renv));
    const r = expectOk(coffer(['copy', '--from', src, '--to', dst, '--json'], renv));
    assert.equal(r.mode, 'same-key');
    assert.ok(r.points.every((p: { status: string }) => p.status === 'copied'));
    assert.ok(
      r.points.reduce((n: number, p: { serverSide: number }) => n + p.serverSide, 0) >= 7,
      JSON.stringify(r.points),
    );
    assert.equal(
      r.points.reduce((n: number, p: { bytesUploaded: number }) => n + p.bytesUploaded, 0),
      0,
    );
    const out = join(dir.path, 'replica-out');
    expectOk(coffer(['restore', '--repo', dst, p2.id, '--disk', '0', '--target', out, '--json'], renv));
    assertSameBytes(out, disk2);
    assert.equal(expectOk(coffer(['verify', '--repo', dst, '--read-data', '--json'], renv)).ok, true);
  });

  test('a replica in another service that cannot read the source: the copy falls back to moving the bytes', () => {
    const dst = at(west, 'replica');
    expectOk(coffer(['init', '--repo', dst, '--copy-of', src, '--json'], env));
    const r = expectOk(coffer(['copy', '--from', src, '--to', dst, '--json'], env));
    assert.equal(r.mode, 'same-key');
    assert.equal(
      r.points.reduce((n: number, p: { serverSide: number }) => n + p.serverSide, 0),
      0,
    );
    assert.ok(r.points.reduce((n: number, p: { bytesUploaded: number }) => n + p.bytesUploaded, 0) > 7 * 1024 * 1024);
    const out = join(dir.path, 'replica2-out');
    expectOk(coffer(['restore', '--repo', dst, p2.id, '--disk', '0', '--target', out, '--json'], env));
    assertSameBytes(out, disk2);
  });

  test('an interrupted copy leaves no restore point in the target; the rerun reuses what was uploaded', async () => {
    const bigPoint = expectOk(coffer(['backup', '--repo', src, '--vm', 'vm3', big, '--json'], env));
    const dst = at(west, 'interrupted');
    expectOk(coffer(['init', '--repo', dst, '--json', ...KDF], { ...env, COFFER_PASSWORD: OTHER_PASSWORD }));
    const cenv = { ...env, COFFER_TO_PASSWORD: OTHER_PASSWORD, COFFER_WORKERS: '1' };
    // 2 MiB/s: the copy of 24 MiB takes ~12 s, so it is surely under way when it is killed after 3 s
    const run = cofferAsync(['copy', '--from', src, '--to', dst, bigPoint.id, '--limit-upload', '2M', '--json'], cenv);
    const container = new ContainerClient(
      `http://127.0.0.1:${west.port}/${WEST}/interrupted`,
      new StorageSharedKeyCredential(WEST, WEST_KEY),
    );
    const chunksIn = async () => {
      let n = 0;
      for await (const _ of container.listBlobsFlat({ prefix: 'chunks/' })) n++;
      return n;
    };
    while ((await chunksIn()) < 4 && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    run.child.kill('SIGKILL');
    await run.done;
    assert.deepEqual(
      expectOk(await cofferAsync(['list', '--repo', dst, '--json'], { ...env, COFFER_PASSWORD: OTHER_PASSWORD }).done),
      [],
    );
    const r = json(await cofferAsync(['copy', '--from', src, '--to', dst, bigPoint.id, '--json'], cenv).done);
    assert.equal(r.points[0].status, 'copied', JSON.stringify(r));
    const full = 24 * 1024 * 1024;
    assert.ok(
      r.points[0].bytesUploaded < full - 3 * 1024 * 1024,
      `rerun uploaded ${r.points[0].bytesUploaded} bytes: chunks from the interrupted run were reused`,
    );
    const out = join(dir.path, 'interrupted-out');
    expectOk(
      await cofferAsync(['restore', '--repo', dst, bigPoint.id, '--disk', '0', '--target', out, '--json'], {
        ...env,
        COFFER_PASSWORD: OTHER_PASSWORD,
      }).done,
    );
    assertSameBytes(out, big);
  });

  test('--limit-upload caps the rate; bad selections are USAGE / NOT_FOUND', () => {
    const local = join(dir.path, 'local-target');
    expectOk(coffer(['init', '--repo', local, '--json', ...KDF]));
    const t0 = Date.now();
    expectOk(
      coffer(['copy', '--from', src, '--to', local, p3.id, '--limit-upload', '512K', '--json'], {
        ...env,
        COFFER_TO_PASSWORD: TEST_PASSWORD,
      }),
    );
    const s = (Date.now() - t0) / 1000;
    assert.ok(s >= 3, `2 MiB at 512 KiB/s took ${s} s`);
    expectError(coffer(['copy', '--from', src, '--to', local, p3.id, '--vm', 'vm1', '--json'], env), 2, 'USAGE');
    expectError(coffer(['copy', '--from', src, '--to', local, '--vm', 'nobody', '--json'], env), 9, 'NOT_FOUND');
    expectError(coffer(['copy', '--from', src, '--to', local, '--limit-upload', 'fast', '--json'], env), 2, 'USAGE');
  });
});
