// Datacenters inside folders (issue 14): vCenter's /folder access takes `dcPath` = the datacenter's inventory path.
// The inventory is rearranged through the API (no govc): two folders under the root folder, the simulator's DC0 moved
// into /Europe and a second (empty) datacenter also named "DC0" created in /US (legal in vCenter) - so only the full
// path names the right one (the simulator's finder, like vCenter, refuses an ambiguous bare name).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { expectOk, makeGuestDisk } from './helpers/more-cli.js';
import {
  downloadDisk,
  listSnapshots,
  retrieveProperties,
  soapCall,
  startVcsim,
  uploadDisk,
  vcLogin,
  waitTask,
  xmlAll,
  xmlEscape,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

async function task(s: VcSession, xml: string): Promise<void> {
  await waitTask(s, xmlText(xml, 'returnval')!);
}

describe('vSphere datacenters inside folders (vcsim)', () => {
  const tmp = tempDir('coffer-vsphere-dcpath-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  const VM = 'DC0_H0_VM0'; // its datacenter DC0 moves to /Europe
  let image: Buffer;

  before(async () => {
    vc = await startVcsim({ diskMiB: [1], vms: 1, layoutVms: false });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    const img = join(tmp.path, 'src.raw');
    makeGuestDisk(img, vc.vm(VM).disks[0]!.capacityBytes, 'dcpath');
    image = readFileSync(img);
    await uploadDisk(vc, vc.vm(VM).disks[0]!, image); // dcPath=DC0 still names it: before the move

    const sc = await soapCall(vc, undefined, 'RetrieveServiceContent', 'ServiceInstance', 'ServiceInstance');
    const root = xmlText(sc, 'rootFolder')!;
    const children = xmlAll(
      await retrieveProperties(session, 'Folder', root, ['childEntity']),
      'ManagedObjectReference',
    );
    assert.equal(children.length, 1, 'one datacenter under the root folder');
    const folders: string[] = [];
    for (const name of ['US', 'Europe']) {
      const r = await soapCall(vc, session, 'CreateFolder', 'Folder', root, `<name>${name}</name>`);
      folders.push(xmlText(r, 'returnval')!);
    }
    await task(
      session,
      await soapCall(
        vc,
        session,
        'MoveIntoFolder_Task',
        'Folder',
        folders[1]!,
        `<list type="Datacenter">${children[0]}</list>`,
      ),
    );
    await soapCall(vc, session, 'CreateDatacenter', 'Folder', folders[0]!, `<name>${xmlEscape('DC0')}</name>`);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('the bare datacenter name is ambiguous at /folder; the inventory path works', async () => {
    const d = { ...vc.vm(VM).disks[0]!, dcPath: 'DC0' };
    await assert.rejects(downloadDisk(vc, d, { start: 0, end: 15 }));
    const ok = await downloadDisk(vc, { ...d, dcPath: 'Europe/DC0' }, { start: 0, end: 15 });
    assert.ok(ok.equals(image.subarray(0, 15)));
  });

  test('inventory and check show the paths; backup over http reads through dcPath=Europe/DC0', () => {
    const inv = expectOk(
      coffer(['vsphere', 'inventory', `vsphere://${vc.host}:${vc.port}`, '--insecure-tls', '--json'], env),
    );
    assert.deepEqual(inv.datacenters.map((x: any) => x.path).sort(), ['/Europe/DC0', '/US/DC0']);
    assert.equal(inv.vms.find((v: any) => v.name === VM).path, `/Europe/DC0/vm/${VM}`);
    const url = `vsphere://${vc.host}:${vc.port}/Europe/DC0/vm/${VM}`;
    assert.equal(expectOk(coffer(['vsphere', 'check', url, '--insecure-tls', '--json'], env)).ok, true);
    const out = expectOk(
      coffer(['backup', '--repo', repo, url, '--insecure-tls', '--json', '--transport', 'http'], env),
    );
    const target = join(tmp.path, 'restored.raw');
    expectOk(coffer(['restore', '--repo', repo, out.id, '--disk', '0', '--target', target, '--force', '--json']));
    assert.ok(readFileSync(target).equals(image), 'the restore point holds the disk of /Europe/DC0');
  });

  test('no snapshot left', async () => {
    assert.deepEqual(await listSnapshots(session, vc.vm(VM).ref), []);
  });
});
