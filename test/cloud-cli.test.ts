// End to end through the built CLI: backup to / restore from Azurite and s3rver, bad credentials, missing container.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AZURITE_ACCOUNT, startAzurite, startS3rver } from './helpers/cloud-servers.js';
import { coffer, tempDir } from './helpers/cli.js';
import {
  assertSameBytes,
  assertNoStack,
  expectError,
  expectOk,
  makeRandomDisk,
  makeSparseDisk,
} from './helpers/more-cli.js';

const KDF = ['--kdf-cost', '1024'];

describe('cloud repositories through the CLI', () => {
  const dir = tempDir('coffer-cloud-cli-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let azEnv: Record<string, string>;
  const disk = join(dir.path, 'disk.raw');
  const disk2 = join(dir.path, 'disk2.raw');

  before(async () => {
    [azurite, s3] = await Promise.all([startAzurite(join(dir.path, 'azurite')), startS3rver(join(dir.path, 's3rver'))]);
    azEnv = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    makeRandomDisk(disk, 6 * 1024 * 1024 + 4096, 'cloud-disk');
    makeSparseDisk(disk2, 8 * 1024 * 1024, [[1024 * 1024, 2 * 1024 * 1024]], 'cloud-sparse');
  });
  after(async () => {
    await Promise.all([azurite?.stop(), s3?.stop()]);
    dir.cleanup();
  });

  test('azure: init, backup, incremental backup, list, restore bit-exact, verify --read-data', () => {
    const repo = `azure://${AZURITE_ACCOUNT}/repo1/team-a`;
    const init = expectOk(coffer(['init', '--repo', repo, '--json', ...KDF], azEnv));
    assert.equal(init.location, repo);
    const b1 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, disk2, '--json'], azEnv));
    const b2 = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, disk2, '--json'], azEnv));
    assert.equal(b2.parent, b1.id);
    const list = expectOk(coffer(['list', '--repo', repo, '--json'], azEnv));
    assert.deepEqual(
      list.map((p: { id: string }) => p.id),
      [b1.id, b2.id],
    );
    for (const [i, src] of [disk, disk2].entries()) {
      const out = join(dir.path, `az-out-${i}`);
      expectOk(coffer(['restore', '--repo', repo, b2.id, '--disk', String(i), '--target', out, '--json'], azEnv));
      assertSameBytes(out, src);
    }
    const v = expectOk(coffer(['verify', '--repo', repo, '--read-data', '--json'], azEnv));
    assert.equal(v.ok, true);
  });

  test('azure: a second init on the same container is REPO_EXISTS', () => {
    const repo = `azure://${AZURITE_ACCOUNT}/repo2`;
    expectOk(coffer(['init', '--repo', repo, '--json', ...KDF], azEnv));
    expectError(coffer(['init', '--repo', repo, '--json', ...KDF], azEnv), 13, 'REPO_EXISTS');
  });

  test('azure: wrong account key -> ACCESS_DENIED (exit 25) at once, with a hint, no stack', () => {
    const repo = `azure://${AZURITE_ACCOUNT}/repo2?endpoint=${encodeURIComponent(azurite.endpoint)}`;
    const env = { AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT, AZURE_STORAGE_KEY: Buffer.alloc(64, 7).toString('base64') };
    const t0 = Date.now();
    const e = expectError(coffer(['list', '--repo', repo, '--json'], env), 25, 'ACCESS_DENIED');
    assert.ok(Date.now() - t0 < 10_000, 'not retried');
    assert.match(e.hint ?? '', /AZURE_STORAGE_KEY/);
    assertNoStack(coffer(['list', '--repo', repo], env));
  });

  test('azure: a missing container is REPO_NOT_FOUND (exit 3)', () => {
    expectError(
      coffer(['list', '--repo', `azure://${AZURITE_ACCOUNT}/no-such-container`, '--json'], azEnv),
      3,
      'REPO_NOT_FOUND',
    );
  });

  test('azure: an unreachable endpoint fails TRANSIENT after bounded retries', () => {
    const repo = `azure://${AZURITE_ACCOUNT}/repo2?endpoint=${encodeURIComponent('http://127.0.0.1:9/devstoreaccount1')}`;
    const e = expectError(
      coffer(['list', '--repo', repo, '--json'], { ...azEnv, COFFER_STORAGE_RETRIES: '2' }),
      1,
      'TRANSIENT',
    );
    assert.equal(e.details.attempts, 2);
  });

  test('s3: init, backup, restore bit-exact through s3rver (put=head, the emulator ignores If-None-Match)', () => {
    const repo = 's3://bucket-one/backups?put=head';
    const env = s3.env;
    expectOk(coffer(['init', '--repo', repo, '--json', ...KDF], env));
    const b = expectOk(coffer(['backup', '--repo', repo, '--vm', 'vm1', disk, '--json'], env));
    const out = join(dir.path, 's3-out');
    expectOk(coffer(['restore', '--repo', repo, b.id, '--disk', '0', '--target', out, '--json'], env));
    assertSameBytes(out, disk);
    expectError(coffer(['list', '--repo', 's3://no-such-bucket', '--json'], env), 3, 'REPO_NOT_FOUND');
  });
});
