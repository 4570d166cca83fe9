// Restore into a second site (issue 15, item 6): two simulators (two vCenters), a VM backed up at site A into one
// repository, copied (`coffer copy`, re-encrypted for other keys) into a second repository, and restored from that
// copy into site B's vCenter: placement (datacenter, folder, resource pool, host, datastore) validated before anything
// is created, --dry-run printing the plan, the network mapped onto one of site B's own networks, disks byte for byte.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { assertNoStack, expectError, expectOk, makeGuestDisk } from './helpers/more-cli.js';
import { nfcUploads } from './helpers/vcsim-nfc.js';
import {
  dataLocalPathOf,
  listDisks,
  retrieveProperties,
  soapCall,
  startVcsim,
  uploadDisk,
  vcLogin,
  waitTask,
  xmlEscape,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const MiB = 1 << 20;
const OTHER_PASSWORD = 'site-b-repository-password';

interface InvEntity {
  name: string;
  moref: string;
  path: string;
}

describe('restore into a second site: a copy repository restored into another vCenter', () => {
  const tmp = tempDir('coffer-vsphere-site-');
  const repoA = join(tmp.path, 'repo-site-a');
  const repoB = join(tmp.path, 'repo-site-b');
  let siteA: Vcsim;
  let siteB: Vcsim;
  let sessionB: VcSession;
  let envA: Record<string, string>;
  let envB: Record<string, string>;
  let urlA: string;
  let urlB: string;
  const VM = 'DC0_H0_VM1';
  const images: Buffer[] = [];
  let pointId = '';
  // site B's own placement, made at run time: a datacenter renamed DR, a VM folder, a resource pool in the cluster, a
  // distributed port group only site B has
  const DC = 'DR';
  const FOLDER = `/${DC}/vm/restored`;
  const POOL = `/${DC}/host/DC0_C0/Resources/dr-pool`;
  const HOST = 'DC0_C0_H1';
  const NET = 'dr-segment';
  let folderRef = '';
  let poolRef = '';
  let portgroupKey = '';

  const inventory = (url: string, env: Record<string, string>) =>
    expectOk(coffer(['vsphere', 'inventory', url, '--insecure-tls', '--json'], env));

  before(async () => {
    [siteA, siteB] = await Promise.all([startVcsim({ diskMiB: [8, 2] }), startVcsim({ diskMiB: [4] })]);
    envA = { COFFER_VSPHERE_USER: siteA.username, COFFER_VSPHERE_PASSWORD: siteA.password };
    envB = { COFFER_VSPHERE_USER: siteB.username, COFFER_VSPHERE_PASSWORD: siteB.password };
    urlA = `vsphere://${siteA.host}:${siteA.port}`;
    urlB = `vsphere://${siteB.host}:${siteB.port}`;
    // site A: the VM's disks get content (data in two places on a sparse disk, a guest file system on the other)
    const disks = siteA.vm(VM).disks;
    const d0 = Buffer.alloc(disks[0]!.capacityBytes);
    prng('site-a', 192 * 1024).copy(d0, 0);
    prng('site-b', 128 * 1024).copy(d0, 6 * MiB + 512);
    images.push(d0);
    const img1 = join(tmp.path, 'src1.raw');
    makeGuestDisk(img1, disks[1]!.capacityBytes, 'site-1');
    images.push(readFileSync(img1));
    for (const [i, d] of disks.entries()) await uploadDisk(siteA, d, images[i]!);
    expectOk(coffer(['init', '--repo', repoA, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    pointId = expectOk(coffer(['backup', '--repo', repoA, `${urlA}/${VM}`, '--insecure-tls', '--json'], envA)).id;
    // the second region's repository has its own password: the copy re-encrypts
    expectOk(
      coffer(['init', '--repo', repoB, '--chunk-size', '64K', '--kdf-cost', '1024', '--json'], {
        COFFER_PASSWORD: OTHER_PASSWORD,
      }),
    );
    const copied = expectOk(
      coffer(['copy', '--from', repoA, '--to', repoB, pointId, '--json'], { COFFER_TO_PASSWORD: OTHER_PASSWORD }),
    );
    assert.deepEqual(
      copied.points.map((p: { id: string }) => p.id),
      [pointId],
    );

    // site B: its own names
    sessionB = await vcLogin(siteB);
    const inv = inventory(urlB, envB);
    const dc0 = (inv.datacenters as InvEntity[]).find((d) => d.name === 'DC0')!;
    await waitTask(
      sessionB,
      xmlText(
        await soapCall(siteB, sessionB, 'Rename_Task', 'Datacenter', dc0.moref, `<newName>${DC}</newName>`),
        'returnval',
      )!,
    );
    const vmFolder = (inv.folders as InvEntity[]).find((f) => f.path === '/DC0/vm')!;
    folderRef = xmlText(
      await soapCall(siteB, sessionB, 'CreateFolder', 'Folder', vmFolder.moref, '<name>restored</name>'),
      'returnval',
    )!;
    const clusterPool = (inv.resourcePools as InvEntity[]).find((p) => p.path === '/DC0/host/DC0_C0/Resources')!;
    const alloc = (tag: string) =>
      `<${tag}><reservation>0</reservation><expandableReservation>true</expandableReservation>` +
      `<limit>-1</limit><shares><shares>4000</shares><level>normal</level></shares></${tag}>`;
    poolRef = xmlText(
      await soapCall(
        siteB,
        sessionB,
        'CreateResourcePool',
        'ResourcePool',
        clusterPool.moref,
        `<name>dr-pool</name><spec>${alloc('cpuAllocation')}${alloc('memoryAllocation')}</spec>`,
      ),
      'returnval',
    )!;
    const dvpg = (inv.networks as InvEntity[]).find((n) => n.name === 'DC0_DVPG0')!;
    const dvsXml = await retrieveProperties(sessionB, 'DistributedVirtualPortgroup', dvpg.moref, [
      'config.distributedVirtualSwitch',
    ]);
    const dvs = /<val [^>]*>([^<]+)</.exec(dvsXml)![1]!; // vcsim keeps the switch as a DistributedVirtualSwitch
    await waitTask(
      sessionB,
      xmlText(
        await soapCall(
          siteB,
          sessionB,
          'AddDVPortgroup_Task',
          'DistributedVirtualSwitch',
          dvs,
          `<spec><name>${xmlEscape(NET)}</name><type>earlyBinding</type><numPorts>8</numPorts></spec>`,
        ),
        'returnval',
      )!,
    );
    const net = (inventory(urlB, envB).networks as InvEntity[]).find((n) => n.name === NET)!;
    assert.ok(net, 'site B has its own port group');
    portgroupKey = xmlText(
      await retrieveProperties(sessionB, 'DistributedVirtualPortgroup', net.moref, ['key']),
      'val',
    )!;
  });
  after(async () => {
    await Promise.all([siteA?.stop(), siteB?.stop()]);
    tmp.cleanup();
  });

  const PLACEMENT = [
    '--datacenter',
    DC,
    '--datastore',
    'LocalDS_0',
    '--folder',
    FOLDER,
    '--pool',
    POOL,
    '--host',
    HOST,
    '--network-map',
    `DC0_DVPG0=${NET}`,
  ];
  const restoreB = (name: string, args: string[], json = true) =>
    coffer(
      [
        'restore',
        '--repo',
        repoB,
        pointId.slice(0, 12),
        '--to',
        `${urlB}/${name}`,
        '--insecure-tls',
        ...(json ? ['--json'] : []),
        ...args,
      ],
      { ...envB, COFFER_PASSWORD: OTHER_PASSWORD },
    );
  const vmsNamed = (name: string) => (inventory(urlB, envB).vms as InvEntity[]).filter((v) => v.name === name);
  /** nothing made at site B: no VM of that name, no NFC lease opened, no home folder on its datastore */
  const assertNothingMade = async (name: string, leasesBefore: number) => {
    assert.equal(vmsNamed(name).length, 0, `a VM ${name} was made at site B`);
    assert.equal(Object.keys((await nfcUploads(siteB)).leases).length, leasesBefore, 'an NFC lease was opened');
  };

  test('--dry-run prints the validated plan for site B (JSON and text) and creates nothing', async () => {
    const leases = Object.keys((await nfcUploads(siteB)).leases).length;
    const p = expectOk(restoreB('dr-vm', [...PLACEMENT, '--dry-run']));
    assert.equal(p.dryRun, true);
    assert.equal(p.mode, 'new VM (NFC import)');
    assert.equal(p.datacenter, DC);
    assert.equal(p.datastore, 'LocalDS_0');
    assert.equal(p.folder, FOLDER);
    assert.equal(p.pool, POOL);
    assert.equal(p.host, `/${DC}/host/DC0_C0/${HOST}`);
    assert.deepEqual(
      p.disks.map((d: { capacityBytes: number }) => d.capacityBytes),
      images.map((b) => b.length),
    );
    assert.equal(p.nics.length, 1);
    assert.equal(p.nics[0].network, NET);
    assert.equal(p.nics[0].backing, 'DistributedVirtualPortgroup');
    const text = restoreB('dr-vm', [...PLACEMENT, '--dry-run'], false);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /dry run: .* would be restored as new VM \(NFC import\) dr-vm/);
    assert.match(text.stdout, new RegExp(`datacenter ${DC}, datastore LocalDS_0`));
    assert.match(text.stdout, new RegExp(`folder ${FOLDER}, pool ${POOL}, host /${DC}/host/DC0_C0/${HOST}`));
    assert.match(text.stdout, new RegExp(`NIC \\S+ on ${NET} \\(DistributedVirtualPortgroup\\), new MAC`));
    // --host without --pool: the pool of that host (site A's stored pool does not exist here)
    const standalone = PLACEMENT.slice(0, PLACEMENT.indexOf('--pool')).concat([
      '--host',
      'DC0_H0',
      '--network-map',
      `DC0_DVPG0=${NET}`,
      '--dry-run',
    ]);
    const h = expectOk(restoreB('dr-vm', standalone));
    assert.equal(h.pool, `/${DC}/host/DC0_H0/Resources`);
    assert.equal(h.host, `/${DC}/host/DC0_H0/DC0_H0`);
    await assertNothingMade('dr-vm', leases);
  });

  test('placement unknown at site B is refused before anything is created', async () => {
    const leases = Object.keys((await nfcUploads(siteB)).leases).length;
    const bad: [string, string[], number, string, RegExp][] = [
      ['folder', ['--folder', `/${DC}/vm/no-such-folder`], 9, 'NOT_FOUND', /no VM folder/],
      ['pool', ['--pool', 'no-such-pool'], 9, 'NOT_FOUND', /no resource pool/],
      ['host', ['--host', 'no-such-host'], 9, 'NOT_FOUND', /no host/],
      ['datastore', ['--datastore', 'no-such-ds'], 9, 'NOT_FOUND', /no datastore "no-such-ds" in datacenter DR/],
      ['datacenter', ['--datacenter', 'DC0'], 9, 'NOT_FOUND', /no datacenter "DC0".*have DR/],
      // a host outside the pool's cluster (the standalone host) cannot run a VM of that pool
      ['host not in the pool', ['--host', 'DC0_H0'], 9, 'NOT_FOUND', /not in the cluster or host of resource pool/],
      // a folder that is not a VM folder (the datacenter's host folder)
      ['not a VM folder', ['--folder', `/${DC}/host`], 9, 'NOT_FOUND', /not a VM folder/],
      // site A's network name also exists at site B (both simulators are alike), a name only site A has does not
      ['network', ['--network-map', 'DC0_DVPG0=site-a-only-segment'], 47, 'VSPHERE_NETWORK', /no network/],
    ];
    for (const [what, override, exit, code, message] of bad) {
      const args = [...PLACEMENT];
      for (let i = 0; i < override.length; i += 2) {
        const at = args.indexOf(override[i]!);
        args[at + 1] = override[i + 1]!;
      }
      const e = restoreB('dr-bad', args);
      const err = expectError(e, exit, code);
      assert.match(err.message, message, `${what}: ${err.message}`);
      assertNoStack(e);
      await assertNothingMade('dr-bad', leases);
    }
  });

  test('the copy restores into site B: placement as asked, the network mapped, disks byte for byte', async () => {
    const leases = Object.keys((await nfcUploads(siteA)).leases).length;
    const r = expectOk(restoreB('dr-vm', PLACEMENT));
    assert.equal(r.created, true);
    assert.equal(r.transport, 'nfc');
    const props = await retrieveProperties(sessionB, 'VirtualMachine', r.moref, [
      'parent',
      'resourcePool',
      'runtime.host',
      'config.hardware.device',
    ]);
    assert.match(props, new RegExp(`type="Folder">${folderRef}<`));
    assert.match(props, new RegExp(`type="ResourcePool">${poolRef}<`));
    const hostRef = (inventory(urlB, envB).hosts as InvEntity[]).find((h) => h.name === HOST)!.moref;
    assert.match(props, new RegExp(`type="HostSystem">${hostRef}<`));
    assert.match(props, new RegExp(`<portgroupKey>${portgroupKey}</portgroupKey>`));
    const disks = await listDisks(sessionB, 'VirtualMachine', r.moref);
    assert.equal(disks.length, images.length);
    for (const [i, d] of disks.entries()) {
      assert.match(d.fileName, /^\[LocalDS_0\] dr-vm\//);
      assert.ok(readFileSync(dataLocalPathOf(siteB, d.fileName)).equals(images[i]!), `site B disk ${i} differs`);
    }
    // site A saw nothing of it
    assert.equal(Object.keys((await nfcUploads(siteA)).leases).length, leases);
    assert.equal((inventory(urlA, envA).vms as InvEntity[]).filter((v) => v.name === 'dr-vm').length, 0);
    // the same name again at site B: refused (the new VM exists), nothing replaced
    expectError(restoreB('dr-vm', PLACEMENT), 11, 'TARGET_EXISTS');
  });
});
