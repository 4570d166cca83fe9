// Faults on the way to object storage: throttling storms and dropped connections (a fault-injecting proxy in front
// of Azurite, a test double for faults the real server cannot produce on demand), and Azurite itself going away in
// the middle of a backup and coming back.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from './helpers/cloud-servers.js';
import { cofferAsync, json, tempDir } from './helpers/cli.js';
import { assertSameBytes, expectOk, makeRandomDisk } from './helpers/more-cli.js';
import { FaultProxy } from './helpers/fault-proxy.js';

const KDF = ['--kdf-cost', '1024'];

describe('cloud faults', () => {
  const dir = tempDir('coffer-cloud-faults-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let proxy: FaultProxy;
  let proxyPort: number;
  const disk = join(dir.path, 'disk.raw');
  const big = join(dir.path, 'big.raw');
  // Through the proxy: the account key, with the proxy as endpoint.
  const env = () => ({
    AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
    AZURE_STORAGE_KEY: AZURITE_KEY,
    COFFER_STORAGE_RETRIES: '10',
  });
  const repoVia = (container: string) =>
    `azure://${AZURITE_ACCOUNT}/${container}?endpoint=${encodeURIComponent(`http://127.0.0.1:${proxyPort}/${AZURITE_ACCOUNT}`)}`;

  before(async () => {
    azurite = await startAzurite(join(dir.path, 'azurite'));
    proxy = new FaultProxy(azurite.port);
    proxyPort = await proxy.start();
    makeRandomDisk(disk, 5 * 1024 * 1024, 'faults');
    makeRandomDisk(big, 40 * 1024 * 1024, 'faults-big');
  });
  after(async () => {
    await proxy?.stop();
    await azurite?.stop();
    dir.cleanup();
  });

  test('a storm of 503/429/connection resets on 30% of requests: backup and restore retry through, bit-exact', async () => {
    const repo = repoVia('storm');
    proxy.plan = { rate: 0, kind: 'mixed' };
    expectOk(await cofferAsync(['init', '--repo', repo, '--json', ...KDF], env()).done);
    proxy.plan = { rate: 0.3, kind: 'mixed' };
    proxy.faults = 0;
    const b = json(await cofferAsync(['backup', '--repo', repo, '--vm', 'vm', disk, '--json'], env()).done);
    assert.ok(b.id, JSON.stringify(b));
    const out = join(dir.path, 'storm-out');
    const r = await cofferAsync(['restore', '--repo', repo, b.id, '--disk', '0', '--target', out, '--json'], env())
      .done;
    expectOk(r);
    assert.ok(proxy.faults >= 5, `faults injected: ${proxy.faults}`);
    proxy.plan = { rate: 0, kind: 'mixed' };
    assertSameBytes(out, disk);
  });

  test('throttling that never ends: the backup fails TRANSIENT after its retries and leaves no restore point', async () => {
    const repo = repoVia('outage');
    proxy.plan = { rate: 0, kind: 'throttle-503' };
    expectOk(await cofferAsync(['init', '--repo', repo, '--json', ...KDF], env()).done);
    proxy.plan = { rate: 1, kind: 'throttle-503', methods: ['PUT'] };
    const r = await cofferAsync(['backup', '--repo', repo, '--vm', 'vm', disk, '--json'], {
      ...env(),
      COFFER_STORAGE_RETRIES: '3',
    }).done;
    proxy.plan = { rate: 0, kind: 'throttle-503' };
    assert.equal(r.code, 1, r.stderr);
    assert.equal(json(r).error.code, 'TRANSIENT');
    assert.deepEqual(expectOk(await cofferAsync(['list', '--repo', repo, '--json'], env()).done), []);
  });

  test('Azurite stops in the middle of a backup and comes back: a clear TRANSIENT error, the earlier point intact, no half point, the rerun completes', async () => {
    const repo = repoVia('restart');
    proxy.plan = { rate: 0, kind: 'throttle-503' };
    expectOk(await cofferAsync(['init', '--repo', repo, '--json', ...KDF], env()).done);
    const first = json(await cofferAsync(['backup', '--repo', repo, '--vm', 'vm', disk, '--json'], env()).done);
    assert.ok(first.id);
    proxy.forwarded = 0;
    const run = cofferAsync(['backup', '--repo', repo, '--vm', 'vm', big, '--json'], {
      ...env(),
      COFFER_STORAGE_RETRIES: '3',
    });
    while (proxy.forwarded < 12 && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
    await azurite.stop(); // SIGTERM: Azurite's own metadata store needs it to persist what it acknowledged
    const failed = await run.done;
    assert.equal(failed.code, 1, failed.stderr);
    assert.equal(json(failed).error.code, 'TRANSIENT');
    azurite = await startAzurite(join(dir.path, 'azurite'), { port: azurite.port });
    const list = expectOk(await cofferAsync(['list', '--repo', repo, '--json'], env()).done);
    assert.deepEqual(
      list.map((p: { id: string }) => p.id),
      [first.id],
    );
    const again = json(await cofferAsync(['backup', '--repo', repo, '--vm', 'vm', big, '--json'], env()).done);
    assert.ok(again.id, JSON.stringify(again));
    const out = join(dir.path, 'restart-out');
    expectOk(
      await cofferAsync(['restore', '--repo', repo, again.id, '--disk', '0', '--target', out, '--json'], env()).done,
    );
    assertSameBytes(out, big);
    const v = json(await cofferAsync(['verify', '--repo', repo, '--read-data', '--json'], env()).done);
    assert.equal(v.ok, true, JSON.stringify(v));
  });

  test('the local cache: a second listing downloads no manifests; a damaged cache file is detected and re-fetched', async () => {
    const repo = repoVia('restart'); // holds two restore points from the test above
    proxy.plan = { rate: 0, kind: 'throttle-503' };
    const cache = join(dir.path, 'cache-test');
    const cenv = { ...env(), COFFER_CACHE_DIR: cache };
    proxy.forwarded = 0;
    const first = expectOk(await cofferAsync(['list', '--repo', repo, '--json'], cenv).done);
    const cold = proxy.forwarded;
    proxy.forwarded = 0;
    const second = expectOk(await cofferAsync(['list', '--repo', repo, '--json'], cenv).done);
    const warm = proxy.forwarded;
    assert.deepEqual(second, first);
    assert.equal(cold - warm, first.length, `one GET per manifest saved (cold ${cold}, warm ${warm})`);
    const points = readdirSync(join(cache, readdirSync(cache)[0]!, 'points'));
    const victim = join(cache, readdirSync(cache)[0]!, 'points', points[0]!);
    const bytes = readFileSync(victim);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(victim, bytes);
    proxy.forwarded = 0;
    assert.deepEqual(expectOk(await cofferAsync(['list', '--repo', repo, '--json'], cenv).done), first);
    assert.equal(proxy.forwarded, warm + 1, 'the damaged entry was fetched again');
  });
});
