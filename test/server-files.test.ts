import assert from 'node:assert/strict';
import {
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
  closeSync,
  ftruncateSync,
  openSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, type RunningServer } from './helpers/coffer-server.js';
import { MiB, findAll, mkExt, mkFat, partitionDisk, partitionsOf, patch, prng } from './helpers/fs-images.js';

const ROLES = ['admin', 'operator', 'restore-operator', 'viewer'] as const;
/** A name a careless console would turn into markup, with a terminal escape as well. */
const HOSTILE = '<img src=x onerror=alert(1)>\u001b[31m"q";.txt';

/**
 * File browsing through the server: real ext4 and FAT16 images (mke2fs, mkfs.fat, sfdisk) backed up with the CLI,
 * browsed and downloaded over HTTP.
 */
describe('coffer server: browsing and downloading files of a restore point', () => {
  const tmp = tempDir('coffer-server-files-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const d0 = join(dir, 'disk0.raw'); // MBR: 1 ext4, 2 FAT16, 3 claims to be BitLocker
  const d1 = join(dir, 'disk1.raw'); // ext4 on the whole disk with a damaged superblock
  const src = join(dir, 'ext-src');
  const fsrc = join(dir, 'fat-src');
  let server: RunningServer;
  const tokens: Record<string, string> = {};
  let id = '';
  const base = () => `/api/v1/restore-points/${id}/disks`;

  before(async () => {
    mkdirSync(join(src, 'etc'), { recursive: true });
    mkdirSync(join(src, 'many'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'coffer-guest\n');
    writeFileSync(join(src, 'big.bin'), prng('server-big', 2 * MiB + 777));
    writeFileSync(join(src, HOSTILE), 'hostile\n');
    for (let i = 0; i < 120; i++) writeFileSync(join(src, 'many', `f${String(i).padStart(3, '0')}.txt`), `file ${i}\n`);
    const fd = openSync(join(src, 'sparse.img'), 'w');
    writeSync(fd, prng('sparse', 4096), 0, 4096, 3 * MiB);
    ftruncateSync(fd, 5 * MiB);
    closeSync(fd);
    // 20 MiB of holes: more than socket buffers take, so a download abandoned at once cannot have been sent completely
    const hd = openSync(join(src, 'holes.img'), 'w');
    ftruncateSync(hd, 20 * MiB);
    closeSync(hd);
    // a sparse file larger than its 24 MiB partition: not downloadable (a download is bounded by the partition)
    const hu = openSync(join(src, 'huge.img'), 'w');
    ftruncateSync(hu, 64 * MiB);
    closeSync(hu);
    symlinkSync('../../etc/passwd', join(src, 'escape-link'));
    mkdirSync(join(fsrc, 'Program Files'), { recursive: true });
    writeFileSync(join(fsrc, 'Program Files/settings.json'), '{"fat":true}\n');
    writeFileSync(join(fsrc, 'BIG.BIN'), prng('fat-big', MiB + 5));
    writeFileSync(join(fsrc, 'BROKEN.TXT'), 'one cluster\n');
    partitionDisk(d0, 48 * MiB, 'label: dos\nstart=2048, size=24M, type=83\nsize=16M, type=6\nsize=4M, type=7\n');
    const p = partitionsOf(d0);
    mkExt(d0, 'ext4', src, p[0]!.size, p[0]!.start);
    mkFat(d0, 16, fsrc, p[1]!.size, p[1]!.start);
    // BROKEN.TXT claims 1 MiB, its cluster chain holds one cluster: FS_CORRUPT when its content is read
    const broken = findAll(d0, 'BROKEN  TXT').filter((o) => o >= p[1]!.start && o < p[1]!.start + p[1]!.size);
    assert.equal(broken.length, 1);
    patch(d0, broken[0]! + 28, [0, 0, 0x10, 0]);
    patch(d0, p[2]!.start, Buffer.concat([Buffer.from([0xeb, 0x58, 0x90]), Buffer.from('-FVE-FS-')])); // BitLocker (NTFS itself is read now)
    mkExt(d1, 'ext4', join(src, 'etc'), 8 * MiB);
    patch(d1, 1024 + 24, [30, 0, 0, 0]); // s_log_block_size 30: an absurd block size
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']).code, 0);
    const b = coffer(['backup', '--repo', repo, '--vm', 'guest', d0, d1, '--json']);
    assert.equal(b.code, 0, b.stderr);
    id = JSON.parse(b.stdout).id;
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    server = await startServer({
      dir,
      dataDir,
      config: { repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }] },
    });
    for (const role of ROLES) tokens[role] = makeToken(dataDir, role);
    await until(
      'the catalog has the restore point',
      async () =>
        (await api(server.url, 'GET', '/api/v1/restore-points', { token: tokens.viewer })).body?.items?.length === 1,
    );
  });

  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  const download = (token: string | undefined, query: string, disk = 0) =>
    fetch(`${server.url}${base()}/${disk}/files/content?${query}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  it('lists the partitions of a disk with the filesystem on each', async () => {
    const r = await api(server.url, 'GET', `${base()}/0/files`, { token: tokens.viewer });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.kind, 'partitions');
    assert.equal(r.body.scheme, 'mbr');
    assert.equal(r.body.repository, 'main');
    assert.equal(r.body.sizeBytes, 48 * MiB);
    assert.deepEqual(
      r.body.items.map((p: any) => [p.number, p.filesystem, p.type]),
      [
        [1, 'ext', '0x83'],
        [2, 'fat', '0x06'],
        [3, 'bitlocker', '0x07'],
      ],
    );
  });

  it('lists directories sorted by name with sizes, modes, mtimes; hostile names only JSON-encoded', async () => {
    const r = await api(server.url, 'GET', `${base()}/0/files?partition=1&path=/`, { token: tokens.viewer });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type')!, /^application\/json/);
    assert.equal(r.body.kind, 'directory');
    assert.equal(r.body.filesystem, 'ext4');
    const names = r.body.items.map((e: any) => e.name);
    assert.deepEqual(names, [
      HOSTILE,
      'big.bin',
      'escape-link',
      'etc',
      'holes.img',
      'huge.img',
      'lost+found',
      'many',
      'sparse.img',
    ]);
    assert.equal(r.body.total, 9);
    assert.equal(r.body.nextCursor, null);
    const big = r.body.items.find((e: any) => e.name === 'big.bin');
    assert.deepEqual([big.type, big.size, big.mode, big.path], ['file', 2 * MiB + 777, 0o644, '/big.bin']);
    assert.match(big.mtime, /^\d{4}-\d\d-\d\dT/);
    assert.equal(r.body.items.find((e: any) => e.name === 'escape-link').linkTarget, '../../etc/passwd');
    // the escape character travels as \u001b, the name comes back exactly as stored
    assert.ok(r.text.includes('\\u001b[31m'), 'control characters are JSON-escaped');
    assert.ok(!r.text.includes('\u001b'));
    const one = await api(
      server.url,
      'GET',
      `${base()}/0/files?partition=1&path=${encodeURIComponent('/etc/hostname')}`,
      { token: tokens.viewer },
    );
    assert.equal(one.body.kind, 'entry');
    assert.deepEqual([one.body.entry.name, one.body.entry.size], ['hostname', 13]);
    assert.deepEqual(one.body.items, []);
    const fat = await api(server.url, 'GET', `${base()}/0/files?partition=2&path=/Program%20Files`, {
      token: tokens.viewer,
    });
    assert.equal(fat.body.filesystem, 'fat16');
    assert.deepEqual(
      fat.body.items.map((e: any) => [e.name, e.size]),
      [['settings.json', 13]],
    );
  });

  it('paginates a large directory with limit and cursor (at most 500 entries a page)', async () => {
    const seen: string[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const r: any = await api(
        server.url,
        'GET',
        `${base()}/0/files?partition=1&path=/many&limit=50${cursor ? `&cursor=${cursor}` : ''}`,
        { token: tokens.viewer },
      );
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.items.length <= 50);
      assert.equal(r.body.total, 120);
      seen.push(...r.body.items.map((e: any) => e.name));
      cursor = r.body.nextCursor;
      pages++;
    }
    assert.equal(pages, 3);
    assert.deepEqual(
      seen,
      Array.from({ length: 120 }, (_, i) => `f${String(i).padStart(3, '0')}.txt`),
    );
    const tooMany = await api(server.url, 'GET', `${base()}/0/files?partition=1&path=/many&limit=501`, {
      token: tokens.viewer,
    });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.error.message, /query\.limit/);
    const forged = await api(
      server.url,
      'GET',
      `${base()}/0/files?partition=1&path=/many&cursor=${Buffer.from('["x"]').toString('base64url')}`,
      { token: tokens.viewer },
    );
    assert.equal(forged.status, 400);
  });

  it('downloads files byte for byte (ext4, a sparse file, FAT) with a safe Content-Disposition', async () => {
    const r = await download(tokens['restore-operator'], 'partition=1&path=/etc/hostname');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    assert.equal(r.headers.get('content-length'), '13');
    assert.equal(r.headers.get('content-disposition'), `attachment; filename="hostname"; filename*=UTF-8''hostname`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(await r.text(), 'coffer-guest\n');
    const big = await download(tokens.operator, 'partition=1&path=/big.bin');
    assert.ok(Buffer.from(await big.arrayBuffer()).equals(readFileSync(join(src, 'big.bin'))), 'big.bin differs');
    const sparse = await download(tokens.admin, 'partition=1&path=sparse.img');
    assert.ok(
      Buffer.from(await sparse.arrayBuffer()).equals(readFileSync(join(src, 'sparse.img'))),
      'sparse.img differs',
    );
    const fat = await download(tokens.admin, 'partition=2&path=/BIG.BIN');
    assert.ok(Buffer.from(await fat.arrayBuffer()).equals(readFileSync(join(fsrc, 'BIG.BIN'))), 'FAT BIG.BIN differs');
    const hostile = await download(tokens.admin, `partition=1&path=${encodeURIComponent('/' + HOSTILE)}`);
    assert.equal(hostile.status, 200);
    const cd = hostile.headers.get('content-disposition')!;
    assert.match(cd, /^attachment; filename="[\x20-\x21\x23-\x7e]+"; filename\*=UTF-8''[A-Za-z0-9%._~!-]+$/);
    assert.equal(decodeURIComponent(/filename\*=UTF-8''(.*)$/.exec(cd)![1]!), HOSTILE.replace('\u001b', '_'));
    assert.equal(await hostile.text(), 'hostile\n');
  });

  it('RBAC: every role lists; downloading content needs restore-operator or higher; every download is audited', async () => {
    const got: Record<string, [number, number]> = {};
    for (const role of ROLES) {
      const l = await api(server.url, 'GET', `${base()}/0/files?partition=1&path=/etc`, { token: tokens[role] });
      const d = await download(tokens[role], 'partition=1&path=/etc/hostname');
      await d.arrayBuffer();
      got[role] = [l.status, d.status];
    }
    assert.deepEqual(got, {
      admin: [200, 200],
      operator: [200, 200],
      'restore-operator': [200, 200],
      viewer: [200, 403],
    });
    const denied = await download(tokens.viewer, 'partition=1&path=/etc/hostname');
    assert.equal(((await denied.json()) as any).error.code, 'FORBIDDEN');
    assert.equal((await download(undefined, 'partition=1&path=/etc/hostname')).status, 401);
    const a = await api(
      server.url,
      'GET',
      `/api/v1/audit?limit=500&action=${encodeURIComponent('GET /api/v1/restore-points/:id/disks/:disk/files/content')}`,
      { token: tokens.admin },
    );
    assert.equal(a.status, 200);
    const ok = a.body.items.filter((e: any) => e.status === 200 && e.details.path === '/etc/hostname');
    assert.ok(ok.length >= 4, `downloads audited: ${JSON.stringify(a.body.items)}`);
    const byRestoreOp = ok.find((e: any) => e.actor.startsWith('token:restore-operator'));
    assert.ok(byRestoreOp);
    assert.deepEqual(
      [
        byRestoreOp.details.bytes,
        byRestoreOp.details.complete,
        byRestoreOp.details.pointId,
        byRestoreOp.details.repository,
      ],
      [13, true, id, 'main'],
    );
    assert.equal(byRestoreOp.remote, '127.0.0.1');
    assert.ok(
      a.body.items.some((e: any) => e.status === 403 && e.actor.startsWith('token:viewer')),
      'refused downloads are audited',
    );
    assert.ok(a.body.items.some((e: any) => e.status === 401 && e.actor === 'anonymous'));
    // listing is not audited (reads are not), downloads are
    const lists = await api(
      server.url,
      'GET',
      `/api/v1/audit?limit=5&action=${encodeURIComponent('GET /api/v1/restore-points/:id/disks/:disk/files')}`,
      { token: tokens.admin },
    );
    assert.deepEqual(lists.body.items, []);
  });

  it('audits a download the client abandons half-way as incomplete and releases the disk', async () => {
    const ac = new AbortController();
    const r = await fetch(`${server.url}${base()}/0/files/content?partition=1&path=/holes.img`, {
      headers: { authorization: `Bearer ${tokens.admin}` },
      signal: ac.signal,
    });
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.cancel().catch(() => undefined);
    const action = encodeURIComponent('GET /api/v1/restore-points/:id/disks/:disk/files/content');
    const rec = await until('the abandoned download in the audit log', async () =>
      (
        await api(server.url, 'GET', `/api/v1/audit?limit=50&action=${action}`, { token: tokens.admin })
      ).body.items.find((e: any) => e.details.path === '/holes.img' && e.details.complete === false),
    );
    assert.ok(rec.details.bytes < 20 * MiB, `sent ${rec.details.bytes}`);
    assert.equal(rec.details.error, 'CANCELLED');
    // the server still answers (nothing left hanging)
    const again = await download(tokens.admin, 'partition=1&path=/etc/hostname');
    assert.equal(await again.text(), 'coffer-guest\n');
  });

  it('answers coded errors: damaged or unsupported filesystems, missing paths, non-files, unknown points', async () => {
    const corrupt = await api(server.url, 'GET', `${base()}/1/files?path=/`, { token: tokens.viewer });
    assert.equal(corrupt.status, 422, corrupt.text);
    assert.equal(corrupt.body.error.code, 'FS_CORRUPT');
    assert.match(corrupt.body.error.message, /block size/);
    const corruptGet = await download(tokens.admin, 'path=/hostname', 1);
    assert.equal(corruptGet.status, 422);
    assert.equal(((await corruptGet.json()) as any).error.code, 'FS_CORRUPT');
    const ntfs = await api(server.url, 'GET', `${base()}/0/files?partition=3&path=/`, { token: tokens.viewer });
    assert.equal(ntfs.status, 422);
    assert.equal(ntfs.body.error.code, 'FS_UNSUPPORTED');
    assert.match(ntfs.body.error.message, /BitLocker/);
    const missing = await api(server.url, 'GET', `${base()}/0/files?partition=1&path=/etc/nope`, {
      token: tokens.viewer,
    });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
    const dirGet = await download(tokens.admin, 'partition=1&path=/etc');
    assert.equal(dirGet.status, 400);
    assert.match(((await dirGet.json()) as any).error.message, /a directory, not a regular file/);
    const brokenGet = await download(tokens.admin, 'partition=2&path=/BROKEN.TXT');
    assert.equal(brokenGet.status, 422);
    assert.equal(brokenGet.headers.get('content-disposition'), null, 'no download headers on an error');
    const brokenErr = ((await brokenGet.json()) as any).error;
    assert.equal(brokenErr.code, 'FS_CORRUPT');
    assert.match(brokenErr.message, /cluster chain ends/);
    const action = encodeURIComponent('GET /api/v1/restore-points/:id/disks/:disk/files/content');
    const audited = await api(server.url, 'GET', `/api/v1/audit?limit=100&action=${action}`, { token: tokens.admin });
    const brokenRecords = audited.body.items.filter((e: any) => e.details.path === '/BROKEN.TXT');
    assert.deepEqual(
      brokenRecords.map((e: any) => e.status),
      [422],
      'the failed download is audited once, with its status',
    );
    const huge = await download(tokens.admin, 'partition=1&path=/huge.img');
    assert.equal(huge.status, 422);
    const hugeErr = ((await huge.json()) as any).error;
    assert.equal(hugeErr.code, 'FS_UNSUPPORTED');
    assert.match(hugeErr.message, /claims 67108864 bytes, more than its partition holds/);
    const linkGet = await download(tokens.admin, 'partition=1&path=/escape-link');
    assert.equal(linkGet.status, 400);
    const up = await api(server.url, 'GET', `${base()}/0/files?partition=1&path=/etc/../..`, { token: tokens.viewer });
    assert.equal(up.status, 400);
    const noDisk = await api(server.url, 'GET', `${base()}/7/files`, { token: tokens.viewer });
    assert.equal(noDisk.status, 404);
    const noPoint = await api(server.url, 'GET', `/api/v1/restore-points/${'f'.repeat(32)}/disks/0/files`, {
      token: tokens.viewer,
    });
    assert.equal(noPoint.status, 404);
    const noPartition = await api(server.url, 'GET', `${base()}/0/files?partition=9&path=/`, { token: tokens.viewer });
    assert.equal(noPartition.status, 404, noPartition.text);
    const ambiguous = await api(server.url, 'GET', `${base()}/0/files?path=/`, { token: tokens.viewer });
    assert.equal(ambiguous.status, 400, ambiguous.text);
    assert.match(ambiguous.body.error.message, /the disk has 3 partitions/);
    for (const r of [corrupt, ntfs, missing, up]) assert.doesNotMatch(r.text, /at .*\.js:\d+/);
  });

  it('describes both routes in the OpenAPI document', async () => {
    const o = await api(server.url, 'GET', '/api/openapi.json');
    const list = o.body.paths['/api/v1/restore-points/{id}/disks/{disk}/files'].get;
    const get = o.body.paths['/api/v1/restore-points/{id}/disks/{disk}/files/content'].get;
    assert.equal(list['x-coffer-permission'], 'read');
    assert.equal(get['x-coffer-permission'], 'restore');
    assert.deepEqual(list.parameters.map((p: any) => p.name).sort(), [
      'cursor',
      'disk',
      'id',
      'limit',
      'partition',
      'path',
      'repository',
    ]);
    assert.ok(get.parameters.find((p: any) => p.name === 'path').required);
    assert.match(get.responses['200'].description, /octet-stream/);
  });
});
