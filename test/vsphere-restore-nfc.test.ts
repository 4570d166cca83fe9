// Restore of a new VM through NFC (ImportVApp + HttpNfcLease, streamOptimized uploads) against the real simulator,
// whose launcher keeps the uploaded streams (test/fixtures/vcsim/nfc.go): the resulting disks byte for byte, the
// stored streams read back with Coffer's own VMDK reader and with qemu-img, bytes on the wire ~= allocated data; a
// vSAN target; failures mid-upload remove the half-made VM; networks (port group, distributed port group, mapping,
// disconnected, MACs); the in-place restore never writes through /folder to an unverified file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VmdkSource } from '../src/sources/index.js';
import { coffer, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { nfcDatastoreFull, nfcFailNext, nfcUploads } from './helpers/vcsim-nfc.js';
import {
  dataLocalPathOf,
  failNext,
  listDisks,
  localPathOf,
  powerOff,
  retrieveProperties,
  soapCall,
  startVcsim,
  uploadDisk,
  waitTask,
  xmlText,
  vcLogin,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const MiB = 1 << 20;

describe('coffer restore --to vsphere:// over NFC (vcsim keeping the uploads)', () => {
  const tmp = tempDir('coffer-vsphere-nfc-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  let url: string;
  const VM = 'DC0_H0_VM1';
  const images: Buffer[] = [];
  let pointId = '';
  // disk 0: 8 MiB, 320 KiB of incompressible data in two places, the rest zeros (a sparse disk)
  const DATA0 = 320 * 1024;
  const VMX = `.encoding = "UTF-8"\nconfig.version = "8"\nfirmware = "efi"\nvtpm.present = "TRUE"\n`;
  const NVRAM = Buffer.concat([Buffer.from('MRVN'), prng('nvram', 8 * 1024 - 4)]);

  before(async () => {
    vc = await startVcsim({ diskMiB: [8, 2], folderAuth: true });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    const disks = vc.vm(VM).disks;
    const d0 = Buffer.alloc(disks[0]!.capacityBytes);
    prng('nfc-a', 256 * 1024).copy(d0, 0);
    prng('nfc-b', 64 * 1024).copy(d0, 5 * MiB + 4096); // not grain-aligned: touches two 64 KiB grains
    images.push(d0);
    const img1 = join(tmp.path, 'src1.raw');
    makeGuestDisk(img1, disks[1]!.capacityBytes, 'nfc-1');
    images.push(readFileSync(img1));
    for (const [i, d] of disks.entries()) await uploadDisk(vc, d, images[i]!);
    // identity settings to carry over: EFI with secure boot, an annotation, boot-relevant extraConfig (and a
    // guestinfo key that must not be copied)
    const task = await soapCall(
      vc,
      session,
      'ReconfigVM_Task',
      'VirtualMachine',
      vc.vm(VM).ref,
      '<spec><annotation>nfc source</annotation><firmware>efi</firmware>' +
        '<bootOptions><efiSecureBootEnabled>true</efiSecureBootEnabled></bootOptions>' +
        '<extraConfig><key>disk.EnableUUID</key><value xsi:type="xsd:string">TRUE</value></extraConfig>' +
        '<extraConfig><key>guestinfo.secret</key><value xsi:type="xsd:string">s3cret</value></extraConfig></spec>',
    );
    await waitTask(session, xmlText(task, 'returnval')!);
    // the VM's home folder: a .vmx naming a vTPM and an EFI .nvram (vcsim leaves both empty), kept by the backup
    writeFileSync(localPathOf(vc, `[LocalDS_0] ${VM}/${VM}.vmx`), VMX);
    writeFileSync(localPathOf(vc, `[LocalDS_0] ${VM}/${VM}.nvram`), NVRAM);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    pointId = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env)).id;
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  const restore = (name: string, ...extra: string[]) =>
    coffer(
      [
        'restore',
        '--repo',
        repo,
        pointId,
        '--to',
        `${url}/${name}`,
        '--datastore',
        'LocalDS_0',
        '--insecure-tls',
        '--json',
        ...extra,
      ],
      env,
    );
  const vmsNamed = (name: string) =>
    expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env)).vms.filter(
      (v: { name: string }) => v.name === name,
    );

  test('a new VM is imported over NFC: disks byte for byte, streams readable by Coffer and qemu-img, only data on the wire', async () => {
    const before = (await nfcUploads(vc)).uploads.length;
    const r = expectOk(restore('nfc-vm'));
    assert.equal(r.created, true);
    assert.equal(r.transport, 'nfc');
    const disks = await listDisks(session, 'VirtualMachine', r.moref);
    assert.equal(disks.length, 2);
    const ident = await retrieveProperties(session, 'VirtualMachine', r.moref, [
      'config.firmware',
      'config.bootOptions',
      'config.annotation',
      'config.extraConfig',
    ]);
    assert.match(ident, />efi</);
    assert.match(ident, /<efiSecureBootEnabled>true<\/efiSecureBootEnabled>/);
    assert.match(ident, />nfc source</);
    assert.match(ident, /<key>disk.EnableUUID<\/key><value[^>]*>TRUE<\/value>/);
    assert.doesNotMatch(ident, /guestinfo.secret|s3cret/);
    const { uploads, leases } = await nfcUploads(vc);
    const mine = uploads.slice(before);
    assert.equal(mine.length, 2, JSON.stringify(mine));
    assert.equal(leases[mine[0]!.lease], 'complete');
    for (const [i, d] of disks.entries()) {
      // the disk as the "host" wrote it from the stream
      const onDisk = readFileSync(dataLocalPathOf(vc, d.fileName));
      assert.ok(onDisk.equals(images[i]!), `disk ${i} of the imported VM differs from the original`);
      const up = mine.find((u) => u.fileName === d.fileName)!;
      assert.ok(up && !up.error, JSON.stringify(up));
      // the uploaded stream, read with Coffer's own reader
      const src = await VmdkSource.open(up.streamPath);
      try {
        assert.equal(src.sizeBytes, images[i]!.length);
        const back = Buffer.alloc(src.sizeBytes);
        await src.read(0, back.length, back);
        assert.ok(back.equals(images[i]!), `Coffer's VMDK reader: stream ${i} differs`);
      } finally {
        await src.close();
      }
      // ... and with qemu-img
      const raw = join(tmp.path, `qemu-${i}.raw`);
      const conv = spawnSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', up.streamPath, raw]);
      assert.equal(conv.status, 0, conv.stderr?.toString());
      assert.ok(readFileSync(raw).equals(images[i]!), `qemu-img convert: stream ${i} differs`);
      const img = join(tmp.path, `img-${i}.raw`);
      writeFileSync(img, images[i]!);
      const cmp = spawnSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', up.streamPath, img]);
      assert.equal(cmp.status, 0, cmp.stdout?.toString() + cmp.stderr?.toString());
      const check = spawnSync('qemu-img', ['check', '-f', 'vmdk', up.streamPath]);
      assert.equal(check.status, 0, check.stdout?.toString() + check.stderr?.toString());
    }
    // bytes on the wire: what Coffer counted is what the host received; for the sparse 8 MiB disk about its
    // 320 KiB of (incompressible) data: 3 grains + header, descriptor, one grain table, directory, footer
    const wire = mine.reduce((a, u) => a + u.bytes, 0);
    assert.equal(r.bytesSent, wire);
    const up0 = mine.find((u) => u.fileName === disks[0]!.fileName)!;
    assert.equal(up0.grains, 6); // 4 grains at 0..256K, 2 touched by the 64 KiB at 5 MiB + 4 KiB
    assert.ok(up0.bytes >= DATA0, `${up0.bytes} bytes for ${DATA0} bytes of data`);
    assert.ok(up0.bytes <= DATA0 + 64 * 1024 + 16 * 1024, `${up0.bytes} bytes on the wire for ${DATA0} of data`);
  });

  test('onto vSAN: the import works where /folder writes cannot (no -flat.vmdk to PUT)', async () => {
    const r = expectOk(restore('nfc-vsan', '--datastore', 'vsanDatastore'));
    assert.equal(r.transport, 'nfc');
    const disks = await listDisks(session, 'VirtualMachine', r.moref);
    for (const [i, d] of disks.entries()) {
      assert.match(d.fileName, /^\[vsanDatastore\]/);
      assert.ok(readFileSync(dataLocalPathOf(vc, d.fileName)).equals(images[i]!), `vSAN disk ${i} differs`);
    }
  });

  test('the upload cut mid-stream: VSPHERE_NFC, the lease aborted and the half-made VM deleted', async () => {
    await nfcFailNext(vc, 100_000);
    const e = restore('nfc-cut');
    expectError(e, 46, 'VSPHERE_NFC');
    assertNoStack(e);
    assert.equal(vmsNamed('nfc-cut').length, 0, 'the half-made VM is still there');
    const { uploads, leases } = await nfcUploads(vc);
    const cut = uploads.find((u) => u.error?.startsWith('injected'))!;
    assert.ok(cut);
    assert.equal(leases[cut.lease], 'abort');
  });

  test('the target datastore full mid-upload (lease error NoDiskSpace): VSPHERE_NFC saying so, the VM deleted', async () => {
    // room for the first disk's 320 KiB of data and part of the second disk: the second upload does not fit
    await nfcDatastoreFull(vc, DATA0 + 64 * 1024);
    const e = restore('nfc-full');
    const err = expectError(e, 46, 'VSPHERE_NFC');
    assert.match(err.message, /target datastore is full.*NoDiskSpace/);
    assert.equal(err.details?.datastoreFull, true, JSON.stringify(err));
    assertNoStack(e);
    assert.equal(vmsNamed('nfc-full').length, 0, 'the half-made VM is still there');
    const { uploads, leases } = await nfcUploads(vc);
    const full = uploads.find((u) => u.error?.startsWith('NoDiskSpace'))!;
    assert.ok(full, JSON.stringify(uploads));
    assert.equal(leases[full.lease], 'abort');
    assert.equal(uploads.filter((u) => u.lease === full.lease).length, 2, 'the first disk fitted, the second did not');
  });

  test('the lease failing (HttpNfcLeaseProgress faults): VSPHERE_NFC, the VM deleted', async () => {
    await failNext(vc, 'HttpNfcLeaseProgress', { fault: 'Timedout', message: 'the lease timed out' });
    const e = restore('nfc-lease');
    expectError(e, 46, 'VSPHERE_NFC');
    assert.equal(vmsNamed('nfc-lease').length, 0);
  });

  test('networks: the distributed port group kept, --network-map onto a standard one, disconnected NICs; an unknown network before anything is made', async () => {
    const srcNet = 'DC0_DVPG0'; // vcsim's VMs sit on a distributed port group (stored by name)
    // a plain restore re-creates the NIC on the same distributed port group, connected at power-on
    const plain = await retrieveProperties(session, 'VirtualMachine', vmsNamed('nfc-vm')[0].moref, [
      'config.hardware.device',
    ]);
    assert.match(plain, /VirtualEthernetCardDistributedVirtualPortBackingInfo/);
    assert.match(plain, /<portgroupKey>dvportgroup-\d+<\/portgroupKey>/);
    assert.match(plain, /<startConnected>true<\/startConnected>/);
    // mapped onto a standard port group, not connected at power-on
    const r = expectOk(restore('nfc-mapped', '--network-map', `${srcNet}=VM Network`, '--nics', 'disconnected'));
    const xml = await retrieveProperties(session, 'VirtualMachine', r.moref, ['config.hardware.device']);
    assert.match(xml, /VirtualEthernetCardNetworkBackingInfo/);
    assert.match(xml, /<deviceName>VM Network<\/deviceName>/);
    assert.match(xml, /<startConnected>false<\/startConnected>/);

    const before = (await nfcUploads(vc)).leases;
    const e = restore('nfc-nonet', '--network-map', `${srcNet}=no-such-net`);
    expectError(e, 47, 'VSPHERE_NETWORK');
    assertNoStack(e);
    assert.equal(vmsNamed('nfc-nonet').length, 0);
    assert.equal(Object.keys((await nfcUploads(vc)).leases).length, Object.keys(before).length, 'a lease was made');
    expectError(restore('nfc-x', '--network-map', 'novalue'), 2, 'USAGE');
    expectError(restore('nfc-x', '--nics', 'sometimes'), 2, 'USAGE');
  });

  test('--keep-mac is refused while the original VM uses the MAC; new MACs otherwise', async () => {
    const inv = expectOk(coffer(['vsphere', 'inventory', `${url}/${VM}`, '--insecure-tls', '--json'], env));
    const e = restore('nfc-mac', '--keep-mac');
    expectError(e, 47, 'VSPHERE_NETWORK');
    assert.equal(vmsNamed('nfc-mac').length, 0);
    const xml = await retrieveProperties(session, 'VirtualMachine', vmsNamed('nfc-vm')[0].moref, [
      'config.hardware.device',
    ]);
    const macs = [...xml.matchAll(/<macAddress>([^<]+)<\/macAddress>/g)].map((m) => m[1]);
    const orig = JSON.stringify(inv.vms[0]);
    for (const m of macs) assert.ok(!orig.includes(m!), `restored NIC kept the MAC ${m}`);
  });

  test('--dry-run prints the validated plan and creates nothing; its checks are the real ones', async () => {
    const p = expectOk(restore('nfc-dry', '--dry-run', '--network-map', 'DC0_DVPG0=VM Network', '--folder', '/DC0/vm'));
    assert.equal(p.dryRun, true);
    assert.equal(p.mode, 'new VM (NFC import)');
    assert.equal(p.datacenter, 'DC0');
    assert.equal(p.folder, '/DC0/vm');
    assert.ok(p.pool);
    assert.deepEqual(
      p.disks.map((d: { capacityBytes: number }) => d.capacityBytes),
      images.map((b) => b.length),
    );
    assert.deepEqual(
      p.nics.map((n: { network: string; backing: string }) => [n.network, n.backing]),
      [['VM Network', 'Network']],
    );
    assert.equal(vmsNamed('nfc-dry').length, 0);
    expectError(restore('nfc-dry', '--dry-run', '--network-map', 'DC0_DVPG0=nope'), 47, 'VSPHERE_NETWORK');
    expectError(restore('nfc-dry', '--dry-run', '--pool', '/nope'), 9, 'NOT_FOUND');
    // an existing VM: the in-place plan names it (and a powered-on one is refused as by the real restore)
    const inPlace = expectOk(restore('nfc-vm', '--dry-run', '--force'));
    assert.equal(inPlace.mode, 'in place');
    assert.equal(inPlace.existingVm, vmsNamed('nfc-vm')[0].moref);
  });

  test('home files: the .vmx and .nvram kept at backup; the .nvram written into the new VM; vTPM reported', async () => {
    const m = expectOk(coffer(['show', '--repo', repo, pointId, '--json']));
    const home = (m.vmConfig ?? m.manifest?.vmConfig)?.homeFiles;
    assert.equal(home?.version, 1, JSON.stringify(m).slice(0, 400));
    assert.deepEqual(
      home.files.map((f: { kind: string; name: string; sizeBytes: number }) => [f.kind, f.name, f.sizeBytes]),
      [
        ['vmx', `${VM}.vmx`, VMX.length],
        ['nvram', `${VM}.nvram`, NVRAM.length],
      ],
    );
    const plan = expectOk(restore('nfc-efi', '--dry-run'));
    assert.equal(plan.nvram, true);
    assert.equal(plan.vtpm, true);
    assert.equal(plan.firmware, 'efi');
    assert.ok(plan.warnings.some((w: string) => /virtual TPM/.test(w)));
    const r = expectOk(restore('nfc-efi'));
    assert.ok(r.warnings.some((w: string) => /virtual TPM/.test(w)));
    const vmx = xmlText(
      await retrieveProperties(session, 'VirtualMachine', r.moref, ['config.files.vmPathName']),
      'val',
    )!;
    const nvramPath = vmx.replace(/\.vmx$/, '.nvram');
    assert.ok(readFileSync(localPathOf(vc, nvramPath)).equals(NVRAM), `${nvramPath} is not the stored .nvram`);
  });

  test('--keep-uuid keeps the BIOS UUID; without it the new VM gets its own', async () => {
    const kept = expectOk(restore('nfc-uuid', '--keep-uuid'));
    const uuidOf = async (ref: string) =>
      /<val[^>]*>([^<]+)<\/val>/.exec(await retrieveProperties(session, 'VirtualMachine', ref, ['config.uuid']))![1];
    assert.equal(await uuidOf(kept.moref), vc.vm(VM).uuid);
    assert.notEqual(await uuidOf(vmsNamed('nfc-vm')[0].moref), vc.vm(VM).uuid);
  });

  test('in place (--force) never writes through /folder to an unverified file: a missing descriptor is refused', async () => {
    const r = expectOk(restore('nfc-inplace'));
    await powerOff(session, r.moref).catch(() => undefined);
    const disks = await listDisks(session, 'VirtualMachine', r.moref);
    const desc = localPathOf(vc, disks[0]!.fileName);
    rmSync(desc);
    const e = restore('nfc-inplace', '--force');
    expectError(e, 45, 'VSPHERE_UNSAFE_WRITE');
    assertNoStack(e);
    assert.ok(!existsSync(desc), 'the raw image was written over the .vmdk path');
    // a descriptor-less disk file of the right size is refused as well (never taken as the disk itself)
    writeFileSync(desc, Buffer.alloc(disks[0]!.capacityBytes, 0x11));
    expectError(restore('nfc-inplace', '--force'), 45, 'VSPHERE_UNSAFE_WRITE');
    assert.ok(readFileSync(desc).equals(Buffer.alloc(disks[0]!.capacityBytes, 0x11)));
  });
});
