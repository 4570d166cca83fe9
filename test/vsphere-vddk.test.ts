// VDDK NBD/NBDSSL transport: Coffer starts one `nbdkit vddk` per disk on a private Unix socket and reads it with its
// NBD client. Debian's nbdkit has no vddk plugin and VDDK is not redistributable, so `nbdkit` on PATH is a STAND-IN
// (test/fixtures/vcsim/nbdkit-vddk-standin.sh): it checks the arguments as the vddk plugin documents them (libdir,
// server, user, password=+FILE (0600), SHA-1 thumbprint, vm=moref=, snapshot=, transports=nbdssl:nbd, file=) and
// serves that disk's data file with the real nbdkit file plugin. Also: --transport auto on vSAN without hot-add or VDDK.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { listSnapshots, startVcsim, vcLogin, vddkStandin, type Vcsim, type VcSession } from './helpers/vsphere.js';

describe('vSphere VDDK transport (stand-in nbdkit vddk) and transport auto (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-vddk-');
  const repo = join(tmp.path, 'repo');
  const libdir = join(tmp.path, 'vmware-vix-disklib-distrib');
  const logFile = join(tmp.path, 'standin.log');
  const VM = 'DC0_C0_VSAN0';
  let vc: Vcsim;
  let s: VcSession;
  let env: Record<string, string>;
  let url: string;
  const images: Buffer[] = [];
  const points = () => expectOk(coffer(['list', '--repo', repo, '--json'])).length as number;
  const vddkDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith('coffer-vddk-'));

  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 1] });
    s = await vcLogin(vc);
    env = {
      COFFER_VSPHERE_USER: vc.username,
      COFFER_VSPHERE_PASSWORD: vc.password,
      ...vddkStandin(tmp.path, vc).env,
    };
    url = `vsphere://${vc.host}:${vc.port}`;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = join(tmp.path, `src${i}.raw`);
      makeGuestDisk(img, d.capacityBytes, `vddk-${i}`);
      images.push(readFileSync(img));
      writeFileSync(d.dataLocalPath, images[i]!);
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('a vSAN VM over VDDK: one nbdkit vddk per disk with the documented arguments, byte for byte, all stopped', async () => {
    const before = vddkDirs();
    const r = expectOk(
      coffer(
        [
          'backup',
          '--repo',
          repo,
          `${url}/${VM}`,
          '--insecure-tls',
          '--json',
          '--transport',
          'nbd',
          '--vddk-libdir',
          libdir,
        ],
        env,
      ),
    );
    assert.equal(r.vsphere.transport, 'nbd');
    for (const [i, img] of images.entries()) {
      const out = join(tmp.path, `r${i}.raw`);
      expectOk(coffer(['restore', '--repo', repo, r.id, '--disk', String(i), '--target', out, '--json']));
      assert.ok(readFileSync(out).equals(img), `disk ${i} differs`);
    }
    const log = readFileSync(logFile, 'utf8');
    assert.doesNotMatch(log, /REFUSED/);
    assert.doesNotMatch(log, /^SERVE-RW /m, 'a backup opened a disk read-write');
    const served = [...log.matchAll(/^SERVE (.*) -> /gm)].map((m) => m[1]);
    assert.deepEqual(
      served,
      vc.vm(VM).disks.map((d) => d.fileName),
    );
    assert.match(log, new RegExp(`vm=moref=${vc.vm(VM).ref} snapshot=snapshot-\\d+ transports=nbdssl:nbd`));
    for (const m of log.matchAll(/^ARGS pid=(\d+)/gm))
      assert.equal(existsSync(`/proc/${m[1]}`), false, `nbdkit ${m[1]} still runs`);
    assert.deepEqual(vddkDirs(), before, 'a private socket/password directory was left');
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), []);
  });

  test('nbdkit failing to start: VSPHERE_TRANSPORT with its message, snapshot removed, no restore point', async () => {
    const before = points();
    const r = coffer(
      [
        'backup',
        '--repo',
        repo,
        `${url}/${VM}`,
        '--insecure-tls',
        '--json',
        '--transport',
        'nbd',
        '--vddk-libdir',
        libdir,
      ],
      { ...env, STANDIN_FAIL: '1' },
    );
    const e = expectError(r, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /could not load VDDK library/);
    assertNoStack(r);
    assert.equal(points(), before);
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), []);
  });

  test('--transport auto: VDDK when configured; without hot-add or VDDK a vSAN VM is refused naming the alternatives', async () => {
    const r = expectOk(
      coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json', '--vddk-libdir', libdir], env),
    );
    assert.equal(r.vsphere.transport, 'nbd');
    const before = points();
    const f = coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env);
    const e = expectError(f, 28, 'VSPHERE_TRANSPORT');
    assert.match(e.message, /vSAN/);
    assert.match(e.hint ?? '', /--transport hotadd/);
    assert.match(e.hint ?? '', /--vddk-libdir/);
    assert.equal(points(), before);
    assert.deepEqual(await listSnapshots(s, vc.vm(VM).ref), []);
    // a VMFS VM still goes over http by default
    const h = expectOk(coffer(['backup', '--repo', repo, `${url}/DC0_H0_VM0`, '--insecure-tls', '--json'], env));
    assert.equal(h.vsphere.transport, 'http');
  });
});
