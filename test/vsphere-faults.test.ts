// Bad input and faults around a vSphere backup, against the real simulator with the harness's fault hooks
// (test/fixtures/vcsim/ext.go: failures injected into one call, expired sessions, forgotten changeIds, garbage replies).
// Every case must end with a clear error code (or a documented fallback) and no Coffer snapshot left on the VM.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, cofferAsync, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  clearFailures,
  expireSessions,
  failNext,
  forgetChangeIds,
  growDisk,
  hookState,
  listSnapshots,
  startVcsim,
  uploadDisk,
  vcLogin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const MiB = 1024 * 1024;

describe('vSphere backup faults (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-faults-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  let url: string;
  const VM = 'DC0_C0_RP0_VM0';
  let vmRef = '';
  const images: Buffer[] = [];

  const backupArgs = (...extra: string[]) => [
    'backup',
    '--repo',
    repo,
    `${url}/${VM}`,
    '--insecure-tls',
    '--json',
    ...extra,
  ];
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const noSnapshots = async () =>
    assert.deepEqual(await listSnapshots(session, vmRef), [], 'a snapshot was left on the VM');
  const upload = async () => {
    for (const [i, d] of vc.vm(VM).disks.entries()) await uploadDisk(vc, d, images[i]!);
  };
  const restoreMatches = (id: string) => {
    for (const [i, img] of images.entries()) {
      const out = join(tmp.path, `r-${id.slice(0, 8)}-${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, id, '--disk', String(i), '--target', out, '--force', '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} of ${id} differs`);
    }
  };

  before(async () => {
    // a small QueryChangedDiskAreas page (1 MiB) so every query pages
    vc = await startVcsim({ diskMiB: [3, 2], folderAuth: true, cqdaMaxBytes: MiB });
    session = await vcLogin(vc);
    vmRef = vc.vm(VM).ref;
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `faults-${i}`);
      images.push(readFileSync(img));
    }
    await upload();
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('wrong credentials: VSPHERE_AUTH (exit 22), nothing created', async () => {
    const r = coffer(backupArgs(), { ...env, COFFER_VSPHERE_PASSWORD: 'not-the-password' });
    const e = expectError(r, 22, 'VSPHERE_AUTH');
    assert.match(e.hint ?? '', /COFFER_VSPHERE_PASSWORD/);
    assertNoStack(r);
    assert.equal(points(), 0);
    await noSnapshots();
  });

  test('an unknown VM: NOT_FOUND (exit 9); no VM in the URL: USAGE', () => {
    const r = coffer(['backup', '--repo', repo, `${url}/no-such-vm`, '--insecure-tls', '--json'], env);
    expectError(r, 9, 'NOT_FOUND');
    assertNoStack(r);
    expectError(coffer(['backup', '--repo', repo, url, '--insecure-tls', '--json'], env), 2, 'USAGE');
    expectError(
      coffer(['backup', '--repo', repo, `${url}/${VM}`, join(tmp.path, 'src0.raw'), '--insecure-tls', '--json'], env),
      2,
      'USAGE',
    );
  });

  test('CreateSnapshot_Task fails in vCenter: VSPHERE_FAULT (exit 24) with its message, no restore point, no snapshot', async () => {
    await failNext(vc, 'CreateSnapshot_Task', { fault: 'SnapshotFault', message: 'disk locked by a test hook' });
    const r = coffer(backupArgs(), env);
    const e = expectError(r, 24, 'VSPHERE_FAULT');
    assert.match(e.message, /disk locked by a test hook/);
    assert.equal(e.details.fault, 'SnapshotFault');
    assertNoStack(r);
    assert.equal(points(), 0);
    await noSnapshots();
  });

  test('full backup with paged QueryChangedDiskAreas; then the session expires mid-backup: one re-login, the backup completes', async () => {
    const full = expectOk(coffer(backupArgs(), env));
    assert.equal(full.mode, 'full');
    assert.ok(
      full.vsphere.cbtQueries.every((q: number) => q > 1),
      `QueryChangedDiskAreas did not page: ${full.vsphere.cbtQueries}`,
    );
    restoreMatches(full.id);
    // slow down the incremental's first QueryChangedDiskAreas; while it waits, terminate every session
    prng('expiry', 5000).copy(images[0]!, 2 * MiB + 100);
    await upload();
    await failNext(vc, 'QueryChangedDiskAreas', { mode: 'delay', delayMs: 1500 });
    const run = cofferAsync(backupArgs(), env);
    for (let i = 0; i < 400 && ((await hookState(vc)).failures as unknown[]).length > 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    await expireSessions(vc);
    const r = await run.done;
    const res = expectOk(r);
    assert.equal(res.vsphere.logins, 2, 'logged in again once');
    assert.match(r.stderr, /session expired/);
    assert.equal(res.mode, 'incremental');
    assert.equal(res.vsphere.snapshotRemoved, true);
    restoreMatches(res.id);
    session = await vcLogin(vc); // ours was expired too
    await noSnapshots();
  });

  test('a changeId vCenter rejects (CBT reset): the disks are read in full, and the result says why', async () => {
    prng('reset', 3000).copy(images[1]!, 100);
    await upload();
    await forgetChangeIds(vc, vmRef);
    const r = coffer(backupArgs(), env);
    const res = expectOk(r);
    assert.equal(res.mode, 'full');
    for (const d of res.disks) {
      assert.equal(d.mode, 'full');
      assert.match(d.fallbackReason, /rejected the previous changeId/);
    }
    assert.match(r.stderr, /change tracking not used/);
    restoreMatches(res.id);
    await noSnapshots();
    // and the next one is incremental again
    const next = expectOk(coffer(backupArgs(), env));
    assert.equal(next.mode, 'incremental');
    assert.equal(next.bytesRead, 0);
  });

  test('a disk that grew since the last backup is read in full (the other stays incremental)', async () => {
    const disk = vc.vm(VM).disks[1]!;
    const newSize = 4 * MiB;
    await growDisk(session, vmRef, disk.key, disk.fileName, newSize);
    const grown = Buffer.alloc(newSize);
    images[1]!.copy(grown);
    prng('grown', 4000).copy(grown, 3 * MiB);
    images[1] = grown;
    await uploadDisk(vc, disk, grown);
    const res = expectOk(coffer(backupArgs(), env));
    assert.equal(res.disks[1].sizeBytes, newSize);
    assert.equal(res.disks[1].mode, 'full');
    assert.match(res.disks[1].fallbackReason, /changed size/);
    assert.equal(res.disks[0].mode, 'incremental');
    restoreMatches(res.id);
    await noSnapshots();
  });

  test('a bogus SOAP reply (truncated XML) mid-backup: VSPHERE_FAULT, no new restore point, snapshot removed', async () => {
    const before = points();
    await failNext(vc, 'QueryChangedDiskAreas', { mode: 'garbage' });
    const r = coffer(backupArgs(), env);
    const e = expectError(r, 24, 'VSPHERE_FAULT');
    assert.match(e.message, /QueryChangedDiskAreas/);
    assertNoStack(r);
    assert.equal(points(), before);
    await noSnapshots();
    // an HTML error page instead of SOAP, every time (a read is retried 3 times)
    await failNext(vc, 'RetrievePropertiesEx', { mode: 'http503', count: 4 });
    const h = coffer(backupArgs(), env);
    const he = expectError(h, 24, 'VSPHERE_FAULT');
    assert.match(he.message, /not SOAP \(HTTP 503/);
    assertNoStack(h);
    await noSnapshots();
    await clearFailures(vc);
  });

  test('a dropped connection on a read-only call is retried; the backup completes', async () => {
    await failNext(vc, 'QueryChangedDiskAreas', { mode: 'drop' });
    const r = coffer(backupArgs(), env);
    const res = expectOk(r);
    assert.match(r.stderr, /QueryChangedDiskAreas: .*retrying/);
    assert.equal(res.mode, 'incremental');
    restoreMatches(res.id);
    await noSnapshots();
  });

  test('SIGINT during a backup: CANCELLED (exit 130), the snapshot is still removed', async () => {
    const before = points();
    await failNext(vc, 'QueryChangedDiskAreas', { mode: 'delay', delayMs: 3000 });
    const run = cofferAsync(backupArgs(), env);
    for (let i = 0; i < 400 && ((await hookState(vc)).failures as unknown[]).length > 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.equal(points(), before);
    await noSnapshots();
  });
});
