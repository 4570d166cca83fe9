// The server's policies select VMs from a vCenter (the real simulator, vcsim from Debian's govmomi with Coffer's CBT
// emulation): a pattern picks one VM, a backup job runs the vSphere path (snapshot, CBT, configuration, snapshot
// removed), the second job is incremental, a wrong vCenter password fails the job with VSPHERE_AUTH.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, waitJob, type RunningServer } from './helpers/coffer-server.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { listSnapshots, startVcsim, uploadDisk, vcLogin, type Vcsim, type VcSession } from './helpers/vsphere.js';

describe('coffer server: policies select vSphere VMs (vcsim)', () => {
  const tmp = tempDir('coffer-server-vsphere-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  const repo = join(dir, 'repo');
  const VM = 'DC0_H0_VM0';
  let vc: Vcsim;
  let session: VcSession;
  let server: RunningServer;
  let admin: string;
  const images: Buffer[] = [];
  let first: any;

  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 3], folderAuth: true });
    session = await vcLogin(vc);
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(dir, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `srv-vsphere-${i}`);
      images.push(readFileSync(img));
      await uploadDisk(vc, d, images[i]!);
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    writeFileSync(join(dir, 'repo.pw'), TEST_PASSWORD + '\n');
    const url = `vsphere://${vc.host}:${vc.port}`;
    server = await startServer({
      dir,
      dataDir,
      env: { VC_USER: vc.username, VC_PASS: vc.password, VC_BAD_PASS: 'not-the-password' },
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'repo.pw') }],
        vcenters: [
          { name: 'lab', url, userEnv: 'VC_USER', passwordEnv: 'VC_PASS', thumbprint: vc.thumbprint },
          { name: 'badpw', url, userEnv: 'VC_USER', passwordEnv: 'VC_BAD_PASS', thumbprint: vc.thumbprint },
          {
            name: 'badtls',
            url,
            userEnv: 'VC_USER',
            passwordEnv: 'VC_PASS',
            thumbprint: '00'.repeat(32).replace(/(..)(?!$)/g, '$1:'),
          },
        ],
        retries: { maxAttempts: 1, backoffSeconds: 0 },
      },
    });
    admin = makeToken(dataDir, 'admin');
  });

  after(async () => {
    await server?.stop();
    await vc?.stop();
    tmp.cleanup();
  });

  it('validates vCenter selectors with precise paths and rejects an unknown vCenter', async () => {
    const both = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'x', repository: 'main', vms: [{ vcenter: 'lab' }] },
    });
    assert.equal(both.status, 400, both.text);
    assert.match(both.body.error.message, /vms\[0\]/);
    const typo = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'x', repository: 'main', vms: [{ name: 'a' }, { vcenter: 'lab', pattern: 5 }] },
    });
    assert.equal(typo.status, 400, typo.text);
    assert.match(typo.body.error.message, /body\.vms\[1\]\.pattern: .*expected string/);
    const unknown = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'x', repository: 'main', vms: [{ vcenter: 'nope', pattern: '*' }] },
    });
    assert.equal(unknown.status, 400, unknown.text);
    assert.match(unknown.body.error.message, /vms\[0\]\.vcenter: unknown vCenter "nope"/);
  });

  it('a pattern selects one VM of the vCenter; a folder selects all VMs below it', async () => {
    const r = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'vs', repository: 'main', vms: [{ vcenter: 'lab', pattern: '*_H0_VM0' }] },
    });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(
      r.body.resolvedVms.vms.map((v: any) => v.name),
      [VM],
    );
    assert.deepEqual(r.body.resolvedVms.vms[0].disks, [`vsphere://${vc.host}:${vc.port}/${vc.vm(VM).ref}`]);
    assert.equal(r.body.resolvedVms.vms[0].vcenter, 'lab');
    assert.deepEqual(r.body.resolvedVms.vcenterErrors, []);
    const f = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'folder', repository: 'main', enabled: false, vms: [{ vcenter: 'lab', folder: '/DC0/vm' }] },
    });
    assert.equal(f.status, 201, f.text);
    assert.deepEqual(f.body.resolvedVms.vms.map((v: any) => v.name).sort(), vc.vms.map((v) => v.name).sort());
    const vms = await api(server.url, 'GET', '/api/v1/vms?limit=100', { token: admin });
    assert.equal(vms.status, 200, vms.text);
    const mine = vms.body.items.find((v: any) => v.name === VM);
    assert.ok(mine, 'GET /api/v1/vms lists the vCenter VM');
    // covered by the policy, but not protected until it has a restore point (issue 20)
    assert.equal(mine.covered, true);
    assert.equal(mine.protected, false);
    assert.ok(mine.policies.includes('vs'));
  });

  it('a backup job runs the vSphere path: restore point with the VM disks, snapshot removed', async () => {
    const j = await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'vs' } });
    assert.equal(j.status, 202, j.text);
    assert.equal(j.body.items.length, 1);
    assert.equal(j.body.items[0].vm, VM);
    const done = await waitJob(server.url, admin, j.body.items[0].id, 120_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    first = done.result;
    assert.equal(first.mode, 'full');
    assert.equal(first.vsphere.snapshotRemoved, true);
    assert.equal(first.vsphere.cbtEnabledNow, true);
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), [], 'no coffer snapshot left on the VM');
    assert.ok(
      done.logs.some((l: any) => /restore point [0-9a-f]+ \(full\)/.test(l.message)),
      JSON.stringify(done.logs),
    );
    assert.ok(done.progress && done.progress.bytesDone > 0, 'progress was reported');
    const rp = await api(server.url, 'GET', `/api/v1/restore-points?vm=${VM}`, { token: admin });
    assert.equal(rp.status, 200, rp.text);
    const p = rp.body.items.find((x: any) => x.id === first.id);
    assert.ok(p, `restore point ${first.id} listed`);
    assert.equal(p.mode, 'full');
    assert.deepEqual(
      p.disks.map((d: any) => d.sizeBytes),
      vc.vm(VM).disks.map((d) => d.capacityBytes),
    );
    // the restore point holds the guest content and the VM's configuration, as a CLI backup does
    for (const [i, img] of images.entries()) {
      const out = join(dir, `restored-${i}.raw`);
      expectOk(
        coffer(['restore', '--repo', repo, first.id, '--disk', String(i), '--target', out, '--force', '--json']),
      );
      assert.ok(readFileSync(out).equals(img), `disk ${i} differs from the VM's disk`);
    }
    const m = expectOk(coffer(['show', '--repo', repo, first.id, '--json']));
    assert.equal(m.vm.id, vc.vm(VM).ref);
    assert.equal(m.vmConfig.kind, 'vsphere-vm');
  });

  it('the second job is incremental (CBT)', async () => {
    assert.ok(first, 'needs the first backup');
    prng64k(images[0]!, 5);
    await uploadDisk(vc, vc.vm(VM).disks[0]!, images[0]!);
    const j = await api(server.url, 'POST', '/api/v1/jobs', {
      token: admin,
      body: { kind: 'backup', policy: 'vs', vm: VM },
    });
    assert.equal(j.status, 202, j.text);
    const done = await waitJob(server.url, admin, j.body.items[0].id, 120_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.result.mode, 'incremental');
    assert.equal(done.result.parent, first.id);
    assert.equal(done.result.vsphere.cbtEnabledNow, false);
    assert.deepEqual(
      done.result.disks.map((d: any) => d.bytesRead),
      [64 * 1024, 0],
    );
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), []);
    const rp = await api(server.url, 'GET', `/api/v1/restore-points?vm=${VM}`, { token: admin });
    assert.equal(rp.body.items.find((x: any) => x.id === done.result.id)?.mode, 'incremental');
  });

  it('a scheduled run resolves the pattern and backs the VM up (incremental)', async () => {
    assert.ok(first, 'needs the first backup');
    const r = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'sched', repository: 'main', schedule: '*/2 * * * * *', vms: [{ vcenter: 'lab', name: VM }] },
    });
    assert.equal(r.status, 201, r.text);
    const job = await until('a scheduled job', async () => {
      const l = await api(server.url, 'GET', `/api/v1/jobs?kind=backup&vm=${VM}&limit=50`, { token: admin });
      return l.body.items.find((j: any) => j.trigger === 'schedule');
    });
    const off = await api(server.url, 'PUT', `/api/v1/policies/${r.body.id}`, {
      token: admin,
      body: { name: 'sched', repository: 'main', enabled: false, vms: [{ vcenter: 'lab', name: VM }] },
    });
    assert.equal(off.status, 200, off.text);
    const done = await waitJob(server.url, admin, job.id, 120_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.result.mode, 'incremental');
    assert.equal(done.result.vsphere.snapshotRemoved, true);
  });

  it('a wrong vCenter password: the policy shows VSPHERE_AUTH and its job fails with it; a wrong thumbprint shows VSPHERE_TLS', async () => {
    const r = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'bad', repository: 'main', vms: [{ vcenter: 'badpw', pattern: '*' }] },
    });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body.resolvedVms.vms, []);
    assert.equal(r.body.resolvedVms.vcenterErrors[0].vcenter, 'badpw');
    assert.equal(r.body.resolvedVms.vcenterErrors[0].code, 'VSPHERE_AUTH');
    const j = await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'bad' } });
    assert.equal(j.status, 202, j.text);
    const done = await waitJob(server.url, admin, j.body.items[0].id, 60_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'VSPHERE_AUTH', JSON.stringify(done.error));
    assert.doesNotMatch(JSON.stringify(done), /not-the-password/);
    const tls = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'badtls', repository: 'main', vms: [{ vcenter: 'badtls', pattern: '*' }] },
    });
    assert.equal(tls.status, 201, tls.text);
    assert.equal(tls.body.resolvedVms.vcenterErrors[0]?.code, 'VSPHERE_TLS', JSON.stringify(tls.body.resolvedVms));
    const h = await api(server.url, 'GET', '/api/health');
    assert.equal(h.status, 200, 'the server is still up');
  });
});

/** Overwrites the 64 KiB block n with new bytes (one CBT-sized change). */
function prng64k(buf: Buffer, n: number): void {
  for (let i = 0; i < 65536; i++) buf[n * 65536 + i] = (buf[n * 65536 + i]! + 1 + (i % 251)) & 0xff;
}
