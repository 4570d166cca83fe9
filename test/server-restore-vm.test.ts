// The server's restore-vm job (whole VM into a configured vCenter) against the real simulator whose launcher keeps
// NFC uploads (test/fixtures/vcsim/nfc.go): a dry run returns the plan and creates nothing; a new VM restored from a
// copy repository into a second configured vCenter has its disks byte for byte; unknown vCenter (400), unknown
// datastore and a powered-on in-place target (failed jobs) give coded errors; in place over the powered-off VM; the disk
// restore job's export format; instant recovery start/list/stop; the restore-operator role may run it,
// a viewer may not; the start is audited. The point's stored VM configuration (NICs for the network map) is served.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, waitJob, type RunningServer } from './helpers/coffer-server.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { nfcUploads } from './helpers/vcsim-nfc.js';
import {
  dataLocalPathOf,
  listDisks,
  powerOff,
  powerState,
  retrieveProperties,
  startVcsim,
  uploadDisk,
  vcLogin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

describe('coffer server: restore-vm jobs into vCenter (vcsim keeping NFC uploads)', () => {
  const tmp = tempDir('coffer-server-restore-vm-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const copy = join(dir, 'copy');
  const byId = join(dir, 'by-id');
  const uuidFile = join(dir, 'product_uuid');
  const VM = 'DC0_H0_VM1';
  let vc: Vcsim;
  let session: VcSession;
  let server: RunningServer;
  let admin: string;
  let restorer: string;
  let viewer: string;
  let env: Record<string, string>;
  let url: string;
  const images: Buffer[] = [];
  let pointId = '';

  before(async () => {
    // hot-add for the quick rollback: the server "runs in" DC0_H0_VM0 (its SMBIOS UUID in a file), attached disks
    // appear as by-id links in a directory (test/fixtures/vcsim hotadd.go)
    mkdirSync(byId, { recursive: true });
    vc = await startVcsim({ diskMiB: [2, 1], folderAuth: true, layoutVms: false, byIdDir: byId });
    writeFileSync(uuidFile, `${vc.vm('DC0_H0_VM0').uuid.toUpperCase()}\n`);
    session = await vcLogin(vc);
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(dir, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `srv-restore-vm-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const r of [repo, copy])
      expectOk(coffer(['init', '--repo', r, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    pointId = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env)).id;
    expectOk(coffer(['copy', '--from', repo, '--to', copy, '--json']));
    writeFileSync(join(dir, 'repo.pw'), `${TEST_PASSWORD}\n`);
    const vcenter = (name: string) => ({
      name,
      url,
      userEnv: 'VC_USER',
      passwordEnv: 'VC_PASS',
      thumbprint: vc.thumbprint,
    });
    server = await startServer({
      dir,
      dataDir,
      env: {
        VC_USER: vc.username,
        VC_PASS: vc.password,
        COFFER_PRODUCT_UUID_PATH: uuidFile,
        COFFER_DISK_BY_ID_DIR: byId,
        COFFER_HOTADD_STATE_DIR: join(dir, 'hotadd-state'),
      },
      config: {
        repositories: [
          { name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') },
          { name: 'dr-copy', location: copy, passwordFile: join(dir, 'repo.pw') },
        ],
        // the same simulator under two names: the production vCenter and the DR site's
        vcenters: [vcenter('lab'), vcenter('dr-site')],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
      },
    });
    admin = makeToken(dataDir, 'admin');
    restorer = makeToken(dataDir, 'restore-operator');
    viewer = makeToken(dataDir, 'viewer');
  });

  after(async () => {
    await server?.stop();
    await vc?.stop();
    tmp.cleanup();
  });

  const start = (body: Record<string, unknown>, token = restorer) =>
    api(server.url, 'POST', '/api/v1/jobs', {
      token,
      body: { kind: 'restore-vm', repository: 'main', pointId, vcenter: 'lab', datastore: 'LocalDS_0', ...body },
    });
  const run = async (body: Record<string, unknown>) => {
    const r = await start(body);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body.items[0].kind, 'restore-vm');
    return waitJob(server.url, admin, r.body.items[0].id);
  };
  const vmsNamed = (name: string) =>
    expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env)).vms.filter(
      (v: { name: string }) => v.name === name,
    );

  it("serves the configured vCenters and the point's stored VM configuration (NICs for the network map)", async () => {
    const vcs = await api(server.url, 'GET', '/api/v1/vcenters', { token: viewer });
    assert.equal(vcs.status, 200, vcs.text);
    assert.deepEqual(
      vcs.body.items.map((v: { name: string }) => v.name),
      ['lab', 'dr-site'],
    );
    assert.doesNotMatch(vcs.text, new RegExp(vc.password));
    const cfg = await api(server.url, 'GET', `/api/v1/restore-points/${pointId}/vm-config?repository=dr-copy`, {
      token: viewer,
    });
    assert.equal(cfg.status, 200, cfg.text);
    assert.equal(cfg.body.vsphere, true);
    assert.equal(cfg.body.vm, VM);
    assert.equal(cfg.body.repository, 'dr-copy');
    assert.deepEqual(
      cfg.body.disks.map((d: { capacityBytes: number }) => d.capacityBytes),
      images.map((b) => b.length),
    );
    assert.ok(cfg.body.nics.length >= 1, cfg.text);
    assert.equal(cfg.body.nics[0].network, 'DC0_DVPG0');
    const none = await api(server.url, 'GET', `/api/v1/restore-points/${'0'.repeat(32)}/vm-config`, { token: viewer });
    assert.equal(none.status, 404, none.text);
    assert.equal(none.body.error.code, 'NOT_FOUND');
  });

  it('a dry run returns the validated plan in the job result and creates nothing', async () => {
    const uploads = (await nfcUploads(vc)).uploads.length;
    const job = await run({
      name: 'rvm-dry',
      dryRun: true,
      networkMap: { DC0_DVPG0: 'VM Network' },
      nicsDisconnected: true,
    });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    const r = job.result;
    assert.equal(r.dryRun, true);
    assert.equal(r.id, pointId);
    assert.equal(r.sourceVm, VM);
    assert.equal(r.plan.mode, 'new VM (NFC import)');
    assert.equal(r.plan.vm, 'rvm-dry');
    assert.equal(r.plan.datastore, 'LocalDS_0');
    assert.equal(r.plan.datacenter, 'DC0');
    assert.deepEqual(
      r.plan.disks.map((d: { capacityBytes: number }) => d.capacityBytes),
      images.map((b) => b.length),
    );
    assert.equal(r.plan.nics[0].network, 'VM Network');
    assert.equal(r.plan.nics[0].connected, false);
    assert.equal(vmsNamed('rvm-dry').length, 0, 'a dry run created a VM');
    assert.equal((await nfcUploads(vc)).uploads.length, uploads, 'a dry run uploaded something');
    assert.match(JSON.stringify(job.logs), /dry run/);
  });

  it('the DR case: a new VM from the copy repository into the second vCenter, disks byte for byte', async () => {
    const r0 = await start({ repository: 'dr-copy', vcenter: 'dr-site', name: 'rvm-new', powerOn: true });
    assert.equal(r0.status, 202, r0.text);
    const job = await waitJob(server.url, admin, r0.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    assert.equal(job.repository, 'dr-copy');
    assert.equal(job.vm, VM);
    const r = job.result;
    assert.equal(r.created, true);
    assert.equal(r.transport, 'nfc');
    assert.equal(r.poweredOn, true);
    assert.equal(r.vm, 'rvm-new');
    assert.match(r.moref, /^vm-\d+$/);
    assert.ok(r.bytesSent > 0, JSON.stringify(r));
    assert.equal(job.progress.bytesDone, job.progress.bytesTotal);
    assert.equal(job.progress.bytesTotal, images[0]!.length + images[1]!.length);
    assert.deepEqual(
      vmsNamed('rvm-new').map((v: { moref: string }) => v.moref),
      [r.moref],
    );
    const disks = await listDisks(session, 'VirtualMachine', r.moref);
    assert.equal(disks.length, images.length);
    for (const [i, d] of disks.entries())
      assert.ok(readFileSync(dataLocalPathOf(vc, d.fileName)).equals(images[i]!), `disk ${i} differs`);
    const power = await retrieveProperties(session, 'VirtualMachine', r.moref, ['runtime.powerState']);
    assert.match(power, /poweredOn/);
    // audited, with who, what and where
    const audit = await api(server.url, 'GET', '/api/v1/audit?limit=100', { token: admin });
    assert.equal(audit.status, 200, audit.text);
    const entry = audit.body.items.find(
      (e: any) => e.action === 'POST /api/v1/jobs' && e.details?.name === 'rvm-new' && e.details?.job === job.id,
    );
    assert.ok(entry, JSON.stringify(audit.body.items.slice(0, 5)));
    assert.equal(entry.details.vcenter, 'dr-site');
    assert.equal(entry.details.kind, 'restore-vm');
  });

  it('bad input: unknown vCenter (400), unknown datastore and a powered-on in-place target (coded job errors)', async () => {
    const unknown = await start({ vcenter: 'nope', name: 'rvm-x' });
    assert.equal(unknown.status, 400, unknown.text);
    assert.equal(unknown.body.error.code, 'USAGE');
    assert.match(unknown.body.error.message, /body\.vcenter: unknown vCenter "nope" \(configured: lab, dr-site\)/);
    const badName = await start({ name: 'a/b' });
    assert.equal(badName.status, 400, badName.text);
    assert.match(badName.body.error.message, /body\.name/);
    const quick = await start({ name: VM, quick: true });
    assert.equal(quick.status, 400, quick.text);
    assert.match(quick.body.error.message, /body\.quick/);

    const ds = await run({ name: 'rvm-nods', datastore: 'NoSuchDS' });
    assert.equal(ds.status, 'failed', JSON.stringify(ds));
    assert.equal(ds.error.code, 'NOT_FOUND', JSON.stringify(ds.error));
    assert.match(ds.error.message, /NoSuchDS/);
    assert.equal(ds.attempt, 1);
    assert.equal(vmsNamed('rvm-nods').length, 0);
    // the CLI's placement options reach the job: an unknown datacenter and an unknown storage policy are refused
    // before anything is made; a storage policy for an in-place restore is a bad request
    const dc = await run({ name: 'rvm-nodc', datacenter: 'NoSuchDC' });
    assert.equal(dc.status, 'failed', JSON.stringify(dc));
    assert.equal(dc.error.code, 'NOT_FOUND', JSON.stringify(dc.error));
    assert.match(dc.error.message, /NoSuchDC/);
    const sp = await run({ name: 'rvm-nosp', storagePolicy: 'No Such Policy' });
    assert.equal(sp.status, 'failed', JSON.stringify(sp));
    assert.match(sp.error.message, /No Such Policy/);
    assert.equal(vmsNamed('rvm-nodc').length + vmsNamed('rvm-nosp').length, 0);
    const spInPlace = await start({ name: VM, force: true, storagePolicy: 'x' });
    assert.equal(spInPlace.status, 400, spInPlace.text);
    assert.match(spInPlace.body.error.message, /body\.storagePolicy/);

    // vcsim's VMs run: the source VM is the powered-on in-place target
    assert.equal(await powerState(session, vc.vm(VM).ref), 'poweredOn');
    const on = await run({ name: VM, force: true });
    assert.equal(on.status, 'failed', JSON.stringify(on));
    assert.equal(on.error.code, 'TARGET_UNWRITABLE', JSON.stringify(on.error));
    assert.match(on.error.message, /poweredOn; power it off/);
    // without force an existing name is refused even in a dry run
    const exists = await run({ name: VM, dryRun: true });
    assert.equal(exists.status, 'failed');
    assert.equal(exists.error.code, 'TARGET_EXISTS', JSON.stringify(exists.error));
  });

  it('in place (force) over the powered-off VM: its own disks get the point back, nothing new is created', async () => {
    await powerOff(session, vc.vm(VM).ref);
    for (const d of vc.vm(VM).disks) await uploadDisk(vc, d, Buffer.alloc(d.capacityBytes, 0x5a));
    const job = await run({ name: VM, force: true });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    assert.equal(job.result.created, false);
    assert.equal(job.result.moref, vc.vm(VM).ref);
    assert.equal(vmsNamed(VM).length, 1);
    for (const [i, d] of vc.vm(VM).disks.entries())
      assert.ok(readFileSync(d.dataLocalPath).equals(images[i]!), `disk ${i} was not restored in place`);
  });

  it('quick rollback (force + quick) over the powered-off VM: only differing blocks written, method and bytes in the result', async () => {
    const d0 = vc.vm(VM).disks[0]!;
    const cur = readFileSync(d0.dataLocalPath);
    Buffer.alloc(64 * 1024, 0xa5).copy(cur, 256 * 1024); // one 64 KiB block differs from the point
    writeFileSync(d0.dataLocalPath, cur);
    const job = await run({ name: VM, force: true, quick: true });
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    const r = job.result;
    assert.equal(r.quick, true);
    assert.equal(r.id, pointId);
    assert.equal(r.moref, vc.vm(VM).ref);
    assert.equal(r.transport, 'hotadd');
    assert.ok(['cbt', 'compare', 'mixed'].includes(r.mode), r.mode);
    assert.equal(r.bytesWritten, 64 * 1024, JSON.stringify(r));
    assert.equal(r.disks.length, images.length);
    for (const [i, d] of vc.vm(VM).disks.entries())
      assert.ok(readFileSync(d.dataLocalPath).equals(images[i]!), `disk ${i} differs after the rollback`);
    assert.deepEqual(readdirSync(byId), [], 'a by-id link was left');
    const noForce = await start({ name: VM, proxyVm: 'DC0_H0_VM0' });
    assert.equal(noForce.status, 400, noForce.text);
    assert.match(noForce.body.error.message, /body\.proxyVm/);
  });

  it('the disk restore job writes the chosen export format (qcow2), the same bytes', async () => {
    const r = await api(server.url, 'POST', '/api/v1/jobs', {
      token: restorer,
      body: { kind: 'restore', repository: 'main', pointId, disk: 1, target: 'disk1.qcow2', format: 'qcow2' },
    });
    assert.equal(r.status, 202, r.text);
    const job = await waitJob(server.url, admin, r.body.items[0].id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    const file = join(dataDir, 'restores', 'disk1.qcow2');
    const info = spawnSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' });
    assert.equal(info.status, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).format, 'qcow2');
    const raw = join(dir, 'img1.raw');
    writeFileSync(raw, images[1]!);
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', file, raw], { encoding: 'utf8' });
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    const bad = await api(server.url, 'POST', '/api/v1/jobs', {
      token: restorer,
      body: { kind: 'restore', repository: 'main', pointId, disk: 1, target: 'x.img', format: 'vdi' },
    });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.body.error.message, /body\.format/);
  });

  it('instant recovery: a disk served over NBD (same bytes through qemu-img), listed, stopped', async () => {
    const r = await api(server.url, 'POST', '/api/v1/instant-recoveries', {
      token: restorer,
      body: { repository: 'dr-copy', pointId, disk: 0 },
    });
    assert.equal(r.status, 201, r.text);
    assert.match(r.body.uri, /^nbd:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{12}-disk0$/);
    assert.equal(r.body.sizeBytes, images[0]!.length);
    assert.equal(r.body.writable, false);
    const raw = join(dir, 'img0.raw');
    writeFileSync(raw, images[0]!);
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', r.body.uri, raw], { encoding: 'utf8' });
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    const list = await api(server.url, 'GET', '/api/v1/instant-recoveries', { token: viewer });
    assert.deepEqual(
      list.body.items.map((i: { id: string }) => i.id),
      [r.body.id],
    );
    assert.equal(
      (await api(server.url, 'DELETE', `/api/v1/instant-recoveries/${r.body.id}`, { token: viewer })).status,
      403,
    );
    const stop = await api(server.url, 'DELETE', `/api/v1/instant-recoveries/${r.body.id}`, { token: restorer });
    assert.equal(stop.status, 200, stop.text);
    assert.equal(stop.body.stopped, true);
    const gone = spawnSync('qemu-img', ['info', r.body.uri], { encoding: 'utf8' });
    assert.notEqual(gone.status, 0, 'the export still answers after stop');
    assert.deepEqual((await api(server.url, 'GET', '/api/v1/instant-recoveries', { token: viewer })).body.items, []);
    const again = await api(server.url, 'DELETE', `/api/v1/instant-recoveries/${r.body.id}`, { token: restorer });
    assert.equal(again.status, 404, again.text);
    const noDisk = await api(server.url, 'POST', '/api/v1/instant-recoveries', {
      token: restorer,
      body: { repository: 'main', pointId, disk: 7 },
    });
    assert.equal(noDisk.status, 404, noDisk.text);
    assert.equal(noDisk.body.error.code, 'NOT_FOUND');
  });

  it('permission: a viewer may not start it; the kind is listed in the OpenAPI document', async () => {
    const denied = await start({ name: 'rvm-viewer', dryRun: true }, viewer);
    assert.equal(denied.status, 403, denied.text);
    const doc = await api(server.url, 'GET', '/api/openapi.json', { token: viewer });
    assert.match(JSON.stringify(doc.body.paths['/api/v1/jobs'].post), /"restore-vm"/);
  });
});
