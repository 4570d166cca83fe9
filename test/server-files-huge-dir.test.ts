import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COOPERATE_EVERY } from '../src/shared/index.js';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { HUGE_DIR_ENTRIES, hugeDirName, makeHugeDirImage } from './helpers/huge-dir-images.js';

const asRoot = process.getuid?.() === 0;

/**
 * Issue 21, item 10, through the server: while a 20,000-entry directory of a real ext4 image (mkfs.ext4, loop mount)
 * is listed over the API, /api/health keeps answering, and the listing answers one page (500 of 20,000, with a cursor).
 * The client asks /api/health again as soon as each answer arrives and counts the answers that arrive before the
 * listing's. Counts, not times. NOTE: this end-to-end check does not by itself tell a cooperative listing from a
 * blocking one (the listing's chunk fetches also let health requests through: 119 answers without the yields, 148
 * with them, in one run); the deterministic proof that the listing yields is test/files-cooperative.test.ts (0 event
 * loop turns without the yields, ~80 with them, per filesystem).
 */
describe('coffer server: a huge guest directory listing does not hold the event loop', {
  skip: !asRoot && 'needs root (loop mount)',
}, () => {
  const tmp = tempDir('coffer-server-huge-dir-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  let server: RunningServer;
  let token = '';
  let id = '';

  before(async () => {
    const disk = join(dir, 'disk0.raw');
    makeHugeDirImage('ext4', disk, dir);
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '8M', '--kdf-cost', '1024', '--json']).code, 0);
    const b = coffer(['backup', '--repo', repo, '--vm', 'huge', disk, '--json']);
    assert.equal(b.code, 0, b.stderr);
    id = JSON.parse(b.stdout).id;
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    server = await startServer({
      dir,
      dataDir,
      config: { repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }] },
    });
    token = makeToken(dataDir, 'viewer');
    await until(
      'the catalog has the restore point',
      async () => (await api(server.url, 'GET', '/api/v1/restore-points', { token })).body?.items?.length === 1,
    );
  });

  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it('answers /api/health again and again while /big (20,000 entries) is listed; the listing is paged', {
    timeout: 300_000,
  }, async (t) => {
    let listed = false;
    const listing = api(server.url, 'GET', `/api/v1/restore-points/${id}/disks/0/files?path=/big&limit=500`, {
      token,
    }).finally(() => {
      listed = true;
    });
    let during = 0;
    while (!listed) {
      const h = await api(server.url, 'GET', '/api/health');
      assert.equal(h.status, 200);
      if (!listed) during++;
    }
    t.diagnostic(`${during} health answers while the listing was in flight`);
    const r = await listing;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.kind, 'directory');
    assert.equal(r.body.total, HUGE_DIR_ENTRIES);
    assert.equal(r.body.items.length, 500, 'one page, not 20,000 entries');
    assert.equal(r.body.items[0].name, hugeDirName(0));
    assert.ok(r.body.nextCursor, 'the next page has a cursor');
    // the server yields every COOPERATE_EVERY entries: 20,000 inodes alone give ~78 turns of its event loop
    assert.ok(
      during >= HUGE_DIR_ENTRIES / COOPERATE_EVERY / 4,
      `${during} health answers arrived while ${HUGE_DIR_ENTRIES} entries were listed`,
    );
  });
});
