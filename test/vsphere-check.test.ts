// `coffer vsphere check` against vcsim-coffer: privileges come from AuthorizationManager.HasPrivilegeOnEntity, which
// the launcher answers from the roles and permissions the test sets (vcsim itself grants everything; check.go), CBT,
// disk layout (vSAN, RDM, independent), transports and leftover snapshots. The check must change nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { expectOk, expectReport } from './helpers/more-cli.js';
import {
  listSnapshots,
  retrieveProperties,
  soapCall,
  startVcsim,
  vcLogin,
  waitTask,
  xmlEscape,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const AM = ['AuthorizationManager', 'AuthorizationManager'] as const;

async function addRole(s: VcSession, name: string, privs: string[]): Promise<number> {
  await soapCall(
    s.vc,
    s,
    'AddAuthorizationRole',
    ...AM,
    `<name>${xmlEscape(name)}</name>${privs.map((p) => `<privIds>${xmlEscape(p)}</privIds>`).join('')}`,
  );
  const xml = await retrieveProperties(s, ...AM, ['roleList']);
  const m = new RegExp(`<roleId>(-?\\d+)</roleId>(?:<system>\\w+</system>)?<name>${name}</name>`).exec(xml);
  assert.ok(m, `role ${name} not in roleList`);
  return Number(m[1]);
}

async function permit(s: VcSession, type: string, value: string, user: string, roleId: number): Promise<void> {
  await soapCall(
    s.vc,
    s,
    'SetEntityPermissions',
    ...AM,
    `<entity type="${type}">${xmlEscape(value)}</entity><permission><principal>${xmlEscape(user)}</principal>` +
      `<group>false</group><roleId>${roleId}</roleId><propagate>true</propagate></permission>`,
  );
}

describe('coffer vsphere check (vcsim with a restricted role)', () => {
  const tmp = tempDir('coffer-vsphere-check-');
  let vc: Vcsim;
  let session: VcSession;
  let env: Record<string, string>;
  let rootFolder: string;
  const url = (vm = '') => `vsphere://${vc.host}:${vc.port}${vm ? `/${vm}` : ''}`;
  const check = (vm: string, ...extra: string[]) =>
    coffer(['vsphere', 'check', url(vm), '--insecure-tls', '--json', ...extra], env);

  before(async () => {
    vc = await startVcsim({ diskMiB: [2] });
    session = await vcLogin(vc);
    env = {
      COFFER_VSPHERE_USER: vc.username,
      COFFER_VSPHERE_PASSWORD: vc.password,
      // this machine is no VM of the simulator: hot-add is unavailable, whatever /sys says
      COFFER_PRODUCT_UUID_PATH: join(tmp.path, 'no-product-uuid'),
    };
    const sc = await soapCall(vc, undefined, 'RetrieveServiceContent', 'ServiceInstance', 'ServiceInstance');
    rootFolder = xmlText(sc, 'rootFolder')!;
  });
  after(async () => {
    await vc?.stop();
    tmp.cleanup();
  });

  test('an administrator: a VMFS VM is OK over http; CBT off and a leftover snapshot are warnings', async () => {
    const vm = vc.vm('DC0_H0_VM0');
    const snap = await soapCall(
      vc,
      session,
      'CreateSnapshot_Task',
      'VirtualMachine',
      vm.ref,
      '<name>coffer-leftover</name><description>from an old Coffer</description><memory>false</memory>' +
        '<quiesce>false</quiesce>',
    );
    await waitTask(session, xmlText(snap, 'returnval')!);
    const r = expectOk(check('DC0_H0_VM0'));
    assert.equal(r.ok, true);
    const v = r.vms[0];
    assert.equal(v.name, 'DC0_H0_VM0');
    assert.equal(v.transport, 'http');
    assert.deepEqual(v.missing, []);
    assert.equal(v.cbt.enabled, false);
    assert.ok(
      v.warnings.some((w: string) => /changed block tracking is off/.test(w)),
      v.warnings.join('\n'),
    );
    assert.ok(v.warnings.some((w: string) => /coffer-leftover was left by an interrupted backup/.test(w)));
    assert.equal(v.transports.hotadd.available, false);
    assert.match(v.transports.hotadd.reason, /SMBIOS UUID/);
    assert.equal(v.transports.nbd.available, false);
    // nothing changed: the snapshot is still there, CBT still off
    assert.deepEqual(await listSnapshots(session, vm.ref), ['coffer-leftover']);
    assert.doesNotMatch(
      await retrieveProperties(session, 'VirtualMachine', vm.ref, ['config']),
      /<changeTrackingEnabled>true</,
    );
  });

  test('vSAN without hot-add or VDDK blocks (exit 29, one JSON report); RDM/independent disks are skipped', () => {
    const rep = expectReport(check('DC0_C0_VSAN0'), 29);
    assert.equal(rep.ok, false);
    const v = rep.vms[0];
    assert.equal(v.transport, null);
    assert.match(v.blockers.join('\n'), /no transport can read.*http: vSAN disks/);
    assert.ok(v.disks.every((d: any) => d.datastoreType === 'vsan'));
    // the virtual RDM has no file /folder can serve: http is out, as `coffer backup --transport http` finds
    const layout = expectReport(check('DC0_H0_LAYOUT0'), 29).vms[0];
    assert.match(layout.transports.http.reason, /RDM disks .*rdm-virtual\.vmdk/);
    const by = (f: string) => layout.disks.find((d: any) => d.fileName.endsWith(f));
    assert.equal(by('independent.vmdk').support, 'skipped');
    assert.equal(by('rdm-physical.vmdk').support, 'skipped');
    assert.equal(by('rdm-virtual.vmdk').support, 'backup');
    assert.equal(by('disk2.vmdk').support, 'backup');
  });

  test('a restricted role: the missing privileges are named per entity; the most specific permission wins', async () => {
    const role = await addRole(session, 'coffer-restricted', [
      'VirtualMachine.State.CreateSnapshot',
      'VirtualMachine.Provisioning.DiskRandomRead',
      'VirtualMachine.Provisioning.GetVmFiles',
      'VirtualMachine.Config.ChangeTracking',
    ]);
    await permit(session, 'Folder', rootFolder, vc.username, role);
    const r = coffer(['vsphere', 'check', url('DC0_H0_VM0'), '--insecure-tls'], env);
    assert.equal(r.code, 29, r.stderr);
    assert.match(r.stdout, /BLOCKED \/DC0\/vm\/DC0_H0_VM0/);
    assert.match(r.stderr, /VSPHERE_CHECK_FAILED/);
    const v = expectReport(check('DC0_H0_VM0'), 29).vms[0];
    assert.deepEqual(
      v.missing.map((m: any) => m.privilege),
      ['VirtualMachine.State.RemoveSnapshot'],
    );
    assert.deepEqual(
      v.transports.http.missing.map((m: any) => `${m.privilege}@${m.entity}`),
      ['Datastore.Browse@LocalDS_0'],
    );
    // Admin (-1) on the VM itself: the VM privileges are there, the datastore still lacks Datastore.Browse
    await permit(session, 'VirtualMachine', vc.vm('DC0_H0_VM0').ref, vc.username, -1);
    const v2 = expectReport(check('DC0_H0_VM0'), 29).vms[0];
    assert.deepEqual(v2.missing, []);
    assert.equal(v2.transports.http.usable, false);
    assert.match(v2.blockers.join('\n'), /http: the account lacks Datastore\.Browse on LocalDS_0/);
    // Admin on the datastore as well: OK
    const ds = vc.datastores.find((d) => d.name === 'LocalDS_0')!;
    await permit(session, 'Datastore', ds.ref, vc.username, -1);
    assert.equal(expectOk(check('DC0_H0_VM0')).ok, true);
    // the whole inventory: the other VMs are still blocked by the root folder's role
    const all = expectReport(check(''), 29);
    assert.ok(all.vms.length >= 4);
    assert.equal(all.vms.find((x: any) => x.name === 'DC0_H0_VM0').ok, true);
    assert.equal(all.vms.find((x: any) => x.name === 'DC0_H0_VM1').ok, false);
  });
});
