// Requests a full backup makes on object storage (issue 19): put-if-absent answers "exists" by itself, so each new
// chunk costs one PUT, not a HEAD and a PUT. Counted by a forwarding proxy (test/helpers/fault-proxy.ts, no faults)
// in front of real Azurite and s3rver, through the built CLI. A second backup of the same data into a new VM (no
// parent to dedup against) finds every chunk present: it must not upload them again one by one (HEAD first once
// most chunks turn out stored), and it stays correct (restores bit-exact).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, startS3rver } from './helpers/cloud-servers.js';
import { cofferAsync, tempDir } from './helpers/cli.js';
import { assertSameBytes, expectOk, makeRandomDisk } from './helpers/more-cli.js';
import { FaultProxy } from './helpers/fault-proxy.js';

const KDF = ['--kdf-cost', '1024'];
const MIB = 1024 * 1024;
const CHUNKS = 64; // 1 MiB chunks (the default size), all distinct and incompressible
/** requests besides the chunks: lease, GC generations, damage records, points listing, index, manifest, release */
const FIXED = 25;

describe('requests per backup on object storage', () => {
  const dir = tempDir('coffer-cloud-requests-');
  process.env.COFFER_CACHE_DIR = join(dir.path, 'cache'); // not the user's ~/.cache
  let azurite: Awaited<ReturnType<typeof startAzurite>>;
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  const proxies: FaultProxy[] = [];
  const disk = join(dir.path, 'disk.raw');

  before(async () => {
    [azurite, s3] = await Promise.all([startAzurite(join(dir.path, 'azurite')), startS3rver(join(dir.path, 's3rver'))]);
    makeRandomDisk(disk, CHUNKS * MIB, 'requests');
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await Promise.all([azurite?.stop(), s3?.stop()]);
    dir.cleanup();
  });

  async function counted(port: number): Promise<{ proxy: FaultProxy; port: number }> {
    const proxy = new FaultProxy(port);
    proxies.push(proxy);
    return { proxy, port: await proxy.start() };
  }

  async function run(args: string[], env: Record<string, string>): Promise<any> {
    return expectOk(await cofferAsync([...args, '--json'], env).done);
  }

  async function check(repo: string, env: Record<string, string>, proxy: FaultProxy, label: string, reuse: boolean) {
    await run(['init', '--repo', repo, ...KDF], env);
    const before1 = proxy.forwarded;
    const b1 = await run(['backup', '--repo', repo, '--vm', 'vm1', disk], env);
    const full = proxy.forwarded - before1;
    assert.equal(b1.chunksNew, CHUNKS);
    assert.ok(
      full <= Math.ceil(CHUNKS * 1.05) + FIXED,
      `${label}: a full backup of ${CHUNKS} new chunks made ${full} requests (limit ${CHUNKS} x 1.05 + ${FIXED})`,
    );
    console.log(`${label}: full backup of ${CHUNKS} new chunks: ${full} requests`);
    if (!reuse) return;
    // the same data as another VM: no parent, every chunk is found stored
    const before2 = proxy.forwarded;
    const b2 = await run(['backup', '--repo', repo, '--vm', 'vm2', disk], env);
    const again = proxy.forwarded - before2;
    assert.equal(b2.chunksNew, 0);
    assert.equal(b2.chunksReused, CHUNKS);
    assert.ok(again <= CHUNKS + 2 * FIXED, `${label}: a backup of stored chunks made ${again} requests`);
    const out = join(dir.path, `${label}-out.raw`);
    await run(['restore', '--repo', repo, b2.id, '--disk', '0', '--target', out], env);
    assertSameBytes(out, disk);
    console.log(`${label}: backup of ${CHUNKS} stored chunks: ${again} requests`);
  }

  test('azure (Azurite): a full backup of N new chunks makes <= N x 1.05 + a constant requests', async () => {
    const { proxy, port } = await counted(azurite.port);
    const endpoint = encodeURIComponent(`http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`);
    await check(
      `azure://${AZURITE_ACCOUNT}/requests?endpoint=${endpoint}`,
      { AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT, AZURE_STORAGE_KEY: AZURITE_KEY },
      proxy,
      'azure',
      true,
    );
  });

  // s3rver ignores If-None-Match (it overwrites: the documented gap), which changes nothing for new chunks: the
  // count is what AWS S3 would see. (A backup of stored chunks cannot be checked here: s3rver never answers 412.)
  test('s3 (s3rver): a full backup of N new chunks makes <= N x 1.05 + a constant requests', async () => {
    const { proxy, port } = await counted(s3.port);
    await check(
      `s3://requests?endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}`,
      { ...s3.env, AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` },
      proxy,
      's3',
      false,
    );
  });
});
