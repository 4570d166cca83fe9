// bench/azure.sh, the bench a user runs against their own storage account, run against a local Azurite: the output's
// shape (MB/s, requests per GiB, request cost per TiB with the prices' date), the container removed afterwards, and a
// missing connection string refused. Not its speed: the machine is shared.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite } from './helpers/cloud-servers.js';
import { tempDir } from './helpers/cli.js';

const SCRIPT = resolve(import.meta.dirname, '..', '..', 'bench', 'azure.sh');

describe('bench/azure.sh against Azurite', () => {
  const dir = tempDir('coffer-bench-azure-');
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  before(async () => {
    azurite = await startAzurite(join(dir.path, 'azurite'));
  });
  after(async () => {
    await azurite?.stop();
    dir.cleanup();
  });
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync('bash', [SCRIPT, ...args], {
      encoding: 'utf8',
      env: { ...process.env, SIZE_MIB: '8', COFFER_BENCH_KDF_N: '1024', TMPDIR: dir.path, ...env },
      timeout: 180_000,
    });

  test('--json: MB/s, requests per GiB and cost per TiB for backup and restore; the container is gone after', async () => {
    const r = run(['--json'], { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString, CONTAINER: 'bench-json' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.sizeMiB, 8);
    assert.match(out.pricesAsOf, /\d{4}/);
    for (const phase of [out.backup, out.restore]) {
      assert.ok(phase.seconds > 0 && phase.mbPerS > 0);
      assert.ok(Number.isInteger(phase.requestsPerGiB) && phase.requestsPerGiB > 0);
      assert.deepEqual(Object.keys(phase.usdPerTiB), ['Hot', 'Cool', 'Cold']);
      for (const v of Object.values(phase.usdPerTiB)) assert.ok(typeof v === 'number' && v > 0);
    }
    // 8 new chunks: 8 puts (no HEAD before them), the restore 8 gets
    assert.equal(out.backup.requests.stat <= 3, true, JSON.stringify(out.backup.requests));
    assert.ok(out.backup.requests.put >= 8 && out.restore.requests.get >= 8);
    const svc = BlobServiceClient.fromConnectionString(azurite.connectionString);
    assert.equal(await svc.getContainerClient('bench-json').exists(), false, 'the bench container is deleted');
  });

  test('text report: one line per phase and the price assumptions', () => {
    const r = run([], { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^backup +[\d.]+ s +[\d.]+ MB\/s +\d+ requests\/GiB +request cost per TiB \(USD\): Hot [\d.]+, Cool [\d.]+, Cold [\d.]+$/m,
    );
    assert.match(r.stdout, /^restore +[\d.]+ s +[\d.]+ MB\/s +\d+ requests\/GiB/m);
    assert.match(r.stdout, /prices: list prices per 10,000 operations as of 2024/);
  });

  test('without a connection string it says what is missing (exit 2)', () => {
    const r = run([], { AZURE_STORAGE_CONNECTION_STRING: '' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /AZURE_STORAGE_CONNECTION_STRING/);
  });
});
