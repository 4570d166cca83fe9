// Storage policy per disk, tags and custom attributes (issue 15, item 5) against the real simulator: govmomi's PBM
// endpoint (/pbm) and vAPI tagging (/rest/com/vmware/cis/tagging), enabled by the launcher; the launcher answers
// PbmQueryAssociatedProfile from what config specs assigned (test/fixtures/vcsim/pbm.go). A VM with a policy on one
// disk, three tags and two custom attributes is backed up; a new VM restored from it gets the policy in its import
// spec, the tags that exist at the target (a missing one is a warning, never created) and the attributes (a missing
// field definition is created); --storage-policy NAME overrides, an unknown name is refused before anything is made.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { prng } from './helpers/disks.js';
import { assertNoStack, expectError, expectOk } from './helpers/more-cli.js';
import { nfcUploads } from './helpers/vcsim-nfc.js';
import {
  dataLocalPathOf,
  listDisks,
  powerOff,
  retrieveProperties,
  soapCall,
  startVcsim,
  uploadDisk,
  vcLogin,
  vcRequest,
  xmlEscape,
  xmlText,
  type Vcsim,
  type VcSession,
} from './helpers/vsphere.js';

const VSAN_POLICY = { id: 'aa6d5a82-1c88-45da-85d3-3d74b91a5bad', name: 'vSAN Default Storage Policy' };
const VVOL_POLICY = { id: 'f4e5bade-15a2-4805-bf8e-52318c4ce443', name: 'VVol No Requirements Policy' };

async function hook(vc: Vcsim, path: string): Promise<any> {
  const r = await vcRequest(vc, 'POST', `/_coffer/${path}`);
  assert.equal(r.status, 200, r.body.toString());
  return JSON.parse(r.body.toString('utf8'));
}

/** vAPI REST as a client would call it (the session from Basic credentials). */
async function vapi(vc: Vcsim, session: string | undefined, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = session
    ? { 'vmware-api-session-id': session }
    : { authorization: `Basic ${Buffer.from(`${vc.username}:${vc.password}`).toString('base64')}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await vcRequest(vc, method, `/rest/com/vmware/cis${path}`, {
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: HTTP ${r.status} ${r.body.toString()}`);
  const text = r.body.toString('utf8');
  return text ? JSON.parse(text).value : undefined;
}

describe('storage policies, tags and custom attributes: kept by the backup, applied by a restore', () => {
  const tmp = tempDir('coffer-vsphere-meta-');
  const repo = join(tmp.path, 'repo');
  let vc: Vcsim;
  let session: VcSession;
  let rest = '';
  let env: Record<string, string>;
  let url: string;
  const VM = 'DC0_H0_VM1';
  const images: Buffer[] = [];
  let pointId = '';
  const tagIds: Record<string, string> = {};
  let cfm = '';

  const attachedTags = async (vmRef: string) => {
    const ids: string[] =
      (await vapi(vc, rest, 'POST', '/tagging/tag-association?~action=list-attached-tags', {
        object_id: { id: vmRef, type: 'VirtualMachine' },
      })) ?? [];
    return Object.entries(tagIds)
      .filter(([, id]) => ids.includes(id))
      .map(([n]) => n)
      .sort();
  };
  const customValues = async (vmRef: string) => {
    const fields = await retrieveProperties(session, 'CustomFieldsManager', cfm, ['field']);
    const names = new Map(
      [...fields.matchAll(/<CustomFieldDef>.*?<key>(\d+)<\/key><name>([^<]*)<\/name>/g)].map((m) => [m[1], m[2]]),
    );
    const xml = await retrieveProperties(session, 'VirtualMachine', vmRef, ['customValue']);
    return Object.fromEntries(
      [...xml.matchAll(/<key>(\d+)<\/key><value>([^<]*)<\/value>/g)].map((m) => [names.get(m[1]), m[2]]),
    );
  };
  const diskPolicies = async (vmRef: string) => {
    const { associations } = await hook(vc, 'pbm-associations');
    const disks = await listDisks(session, 'VirtualMachine', vmRef);
    return disks.map((d) => associations[`${vmRef}:${d.key}`] ?? null);
  };

  before(async () => {
    vc = await startVcsim({ diskMiB: [4, 2] });
    session = await vcLogin(vc);
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
    const vmRef = vc.vm(VM).ref;
    for (const [i, d] of vc.vm(VM).disks.entries()) {
      const img = Buffer.alloc(d.capacityBytes);
      prng(`meta-${i}`, 96 * 1024).copy(img, 4096 * (i + 1));
      images.push(img);
      await uploadDisk(vc, d, img);
    }
    // disk 0 on the vSAN default policy (as set in the vSphere client), disk 1 without one
    await hook(vc, `pbm-associate?vm=${vmRef}&disk=${vc.vm(VM).disks[0]!.key}&profile=${VSAN_POLICY.id}`);
    // tags: env/prod, env/dr-test, owner/alice attached
    rest = await vapi(vc, undefined, 'POST', '/session');
    const category = async (name: string) =>
      vapi(vc, rest, 'POST', '/tagging/category', {
        create_spec: { name, description: '', cardinality: 'MULTIPLE', associable_types: [] },
      });
    const cats = { env: await category('env'), owner: await category('owner') };
    for (const [cat, name] of [
      ['env', 'prod'],
      ['env', 'dr-test'],
      ['owner', 'alice'],
      ['env', 'unused'],
    ] as const) {
      const id = await vapi(vc, rest, 'POST', '/tagging/tag', {
        create_spec: { name, description: '', category_id: cats[cat] },
      });
      tagIds[`${cat}/${name}`] = id;
      if (name !== 'unused')
        await vapi(vc, rest, 'POST', `/tagging/tag-association/id:${id}?~action=attach`, {
          object_id: { id: vmRef, type: 'VirtualMachine' },
        });
    }
    // custom attributes: backup-owner=team-a, cost-center=4711
    const sc = await soapCall(vc, undefined, 'RetrieveServiceContent', 'ServiceInstance', 'ServiceInstance');
    cfm = xmlText(sc, 'customFieldsManager')!;
    for (const [name, value] of [
      ['backup-owner', 'team-a'],
      ['cost-center', '4711'],
    ]) {
      const def = await soapCall(
        vc,
        session,
        'AddCustomFieldDef',
        'CustomFieldsManager',
        cfm,
        `<name>${name}</name><moType>VirtualMachine</moType>`,
      );
      const key = /<key>(\d+)<\/key>/.exec(def)![1];
      await soapCall(
        vc,
        session,
        'SetField',
        'CustomFieldsManager',
        cfm,
        `<entity type="VirtualMachine">${vmRef}</entity><key>${key}</key><value>${xmlEscape(value)}</value>`,
      );
    }
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
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

  test('the backup keeps each disk policy, the tags by category and name, the custom attributes by name', async () => {
    const r = expectOk(coffer(['backup', '--repo', repo, `${url}/${VM}`, '--insecure-tls', '--json'], env));
    pointId = r.id;
    assert.deepEqual(r.vsphere.metadataWarnings, []);
    const m = expectOk(coffer(['show', '--repo', repo, r.id, '--json']));
    assert.deepEqual(
      m.vmConfig.disks.map((d: { storagePolicy: unknown }) => d.storagePolicy),
      [VSAN_POLICY, null],
    );
    assert.deepEqual(m.vmConfig.tags, [
      { category: 'env', name: 'dr-test' },
      { category: 'env', name: 'prod' },
      { category: 'owner', name: 'alice' },
    ]);
    assert.deepEqual(m.vmConfig.customAttributes, [
      { name: 'backup-owner', value: 'team-a' },
      { name: 'cost-center', value: '4711' },
    ]);
  });

  test('a new VM gets the stored policy per disk, the tags that exist (a missing one a warning) and the attributes', async () => {
    // at "restore time" the target lacks the tag owner/alice and the field cost-center
    await vapi(vc, rest, 'DELETE', `/tagging/tag/id:${tagIds['owner/alice']}`);
    delete tagIds['owner/alice'];
    const fields = await retrieveProperties(session, 'CustomFieldsManager', cfm, ['field']);
    const costKey = /<key>(\d+)<\/key><name>cost-center<\/name>/.exec(fields)![1];
    await soapCall(vc, session, 'RemoveCustomFieldDef', 'CustomFieldsManager', cfm, `<key>${costKey}</key>`);

    const dry = expectOk(restore('meta-vm', '--dry-run'));
    assert.deepEqual(
      dry.disks.map((d: { storagePolicy: string | null }) => d.storagePolicy),
      [VSAN_POLICY.name, null],
    );
    assert.deepEqual(dry.tags, ['env/dr-test', 'env/prod']);
    assert.ok(
      dry.warnings.some((w: string) => /tag owner\/alice does not exist/.test(w)),
      dry.warnings.join('\n'),
    );
    assert.equal(vmsNamed('meta-vm').length, 0, 'the dry run made a VM');

    const r = expectOk(restore('meta-vm'));
    assert.equal(r.created, true);
    assert.deepEqual(await diskPolicies(r.moref), [VSAN_POLICY.id, null]);
    assert.deepEqual(await attachedTags(r.moref), ['env/dr-test', 'env/prod']);
    assert.ok(
      r.warnings.some((w: string) => /tag owner\/alice does not exist in the target vCenter: not attached/.test(w)),
      r.warnings.join('\n'),
    );
    assert.deepEqual(await customValues(r.moref), { 'backup-owner': 'team-a', 'cost-center': '4711' });
    // the tag was not created behind the user's back
    const tags: string[] = await vapi(vc, rest, 'GET', '/tagging/tag');
    assert.equal(tags.length, 3);
    for (const [i, d] of (await listDisks(session, 'VirtualMachine', r.moref)).entries())
      assert.ok(readFileSync(dataLocalPathOf(vc, d.fileName)).equals(images[i]!), `disk ${i} differs`);
  });

  test('--storage-policy NAME puts every disk on that policy; an unknown name is refused before anything is made', async () => {
    const r = expectOk(restore('meta-vvol', '--storage-policy', VVOL_POLICY.name));
    assert.deepEqual(await diskPolicies(r.moref), [VVOL_POLICY.id, VVOL_POLICY.id]);

    const leases = Object.keys((await nfcUploads(vc)).leases).length;
    const e = restore('meta-nopolicy', '--storage-policy', 'Gold');
    const err = expectError(e, 9, 'NOT_FOUND');
    assert.match(err.message, /no storage policy "Gold" in the target vCenter/);
    assert.match(err.hint ?? '', /vSAN Default Storage Policy/);
    assertNoStack(e);
    assert.equal(vmsNamed('meta-nopolicy').length, 0);
    assert.equal(Object.keys((await nfcUploads(vc)).leases).length, leases, 'an NFC lease was opened');
    // in place, the disks keep what they have: --storage-policy is refused
    await powerOff(session, vc.vm(VM).ref);
    expectError(restore(VM, '--force', '--storage-policy', VVOL_POLICY.name), 2, 'USAGE');
    expectError(restore(VM, '--force', '--quick', '--storage-policy', VVOL_POLICY.name), 2, 'USAGE');
    expectError(restore('meta-one', '--disk', '0', '--path', 'x/y.img', '--storage-policy', 'Gold'), 2, 'USAGE');
  });

  test('without a storage policy service (as on ESXi) the backup warns and keeps the rest; a stored policy then cannot be looked up', async () => {
    await hook(vc, 'pbm-off?off=1');
    try {
      const r = expectOk(coffer(['backup', '--repo', repo, `${url}/DC0_H0_VM0`, '--insecure-tls', '--json'], env));
      assert.equal(r.vsphere.metadataWarnings.length, 1, JSON.stringify(r.vsphere.metadataWarnings));
      assert.match(r.vsphere.metadataWarnings[0], /^storage policies not kept: .*HTTP 404/);
      const m = expectOk(coffer(['show', '--repo', repo, r.id, '--json']));
      assert.ok(
        m.vmConfig.disks.every((d: object) => !('storagePolicy' in d)),
        'a policy was stored',
      );
      assert.deepEqual(m.vmConfig.tags, []);
      // the point with a stored policy: refused before anything is made (the policy cannot be looked up)
      const e = restore('meta-nopbm');
      expectError(e, 24, 'VSPHERE_FAULT');
      assertNoStack(e);
      assert.equal(vmsNamed('meta-nopbm').length, 0);
    } finally {
      await hook(vc, 'pbm-off?off=0');
    }
  });
});
