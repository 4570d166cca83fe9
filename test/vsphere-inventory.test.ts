// coffer vsphere inventory / thumbprint against the real vCenter simulator (vcsim built from Debian's govmomi).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { coffer } from './helpers/cli.js';
import { assertNoStack, expectError, expectOk } from './helpers/more-cli.js';
import { startVcsim, type Vcsim } from './helpers/vcsim.js';

describe('coffer vsphere inventory (vcsim)', () => {
  let vc: Vcsim;
  let env: Record<string, string>;
  let url: string;
  before(async () => {
    vc = await startVcsim({ diskMiB: [2, 3] });
    env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    url = `vsphere://${vc.host}:${vc.port}`;
  });
  after(async () => vc?.stop());

  test('thumbprint prints the SHA-256 fingerprint the simulator reports', () => {
    const r = expectOk(coffer(['vsphere', 'thumbprint', url, '--json']));
    assert.equal(r.sha256, vc.thumbprint.toUpperCase());
  });

  test('inventory --json lists datacenters, hosts, datastores, networks and every VM with its disks', () => {
    const r = expectOk(coffer(['vsphere', 'inventory', url, '--json', '--thumbprint', vc.thumbprint], env));
    assert.deepEqual(
      r.datacenters.map((d: any) => d.name),
      vc.datacenters,
    );
    assert.ok(r.hosts.length >= 1);
    assert.ok(r.clusters.length >= 1);
    assert.ok(r.resourcePools.length >= 1);
    assert.ok(r.networks.some((n: any) => n.name === 'VM Network'));
    assert.deepEqual(
      r.datastores.map((d: any) => d.name),
      vc.datastores.map((d) => d.name),
    );
    assert.deepEqual(r.vms.map((v: any) => v.name).sort(), vc.vms.map((v) => v.name).sort());
    for (const v of vc.vms) {
      const got = r.vms.find((x: any) => x.name === v.name);
      assert.equal(got.moref, v.ref);
      assert.match(got.path, new RegExp(`^/DC0/vm/.*${v.name}$`));
      assert.equal(got.powerState, 'poweredOn');
      assert.deepEqual(
        got.disks.map((d: any) => [d.key, d.capacityBytes, d.fileName]),
        v.disks.map((d) => [d.key, d.capacityBytes, d.fileName]),
      );
      for (const d of got.disks) {
        assert.ok(d.controller, 'disk has its controller');
        assert.equal(typeof d.unitNumber, 'number');
      }
    }
  });

  test('a VM selector narrows the list: name, moref, path, glob', () => {
    const vm = vc.vms[0]!;
    const byName = expectOk(coffer(['vsphere', 'inventory', `${url}/${vm.name}`, '--json', '--insecure-tls'], env));
    assert.deepEqual(
      byName.vms.map((v: any) => v.moref),
      [vm.ref],
    );
    const byRef = expectOk(coffer(['vsphere', 'inventory', `${url}/${vm.ref}`, '--json', '--insecure-tls'], env));
    assert.deepEqual(
      byRef.vms.map((v: any) => v.name),
      [vm.name],
    );
    const byPath = expectOk(
      coffer(['vsphere', 'inventory', `${url}${byName.vms[0].path}`, '--json', '--insecure-tls'], env),
    );
    assert.deepEqual(
      byPath.vms.map((v: any) => v.name),
      [vm.name],
    );
    const glob = expectOk(coffer(['vsphere', 'inventory', `${url}/DC0_H0_*`, '--json', '--insecure-tls'], env));
    assert.deepEqual(
      glob.vms.map((v: any) => v.name).sort(),
      vc.vms
        .filter((v) => v.name.startsWith('DC0_H0_'))
        .map((v) => v.name)
        .sort(),
    );
    const human = coffer(['vsphere', 'inventory', url, '--insecure-tls'], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(vm.name));
  });

  test('a self-signed vCenter without --thumbprint is refused (VSPHERE_TLS, exit 23) with a hint; a wrong pin too', () => {
    const e = expectError(coffer(['vsphere', 'inventory', url, '--json'], env), 23, 'VSPHERE_TLS');
    assert.match(e.hint ?? '', /--thumbprint/);
    const wrong = expectError(
      coffer(['vsphere', 'inventory', url, '--json', '--thumbprint', 'AB:'.repeat(31) + 'AB'], env),
      23,
      'VSPHERE_TLS',
    );
    assert.match(wrong.message, /fingerprint/);
  });

  test('wrong credentials: VSPHERE_AUTH, exit 22, no stack', () => {
    const r = coffer(['vsphere', 'inventory', url, '--json', '--insecure-tls'], {
      ...env,
      COFFER_VSPHERE_PASSWORD: 'wrong',
    });
    expectError(r, 22, 'VSPHERE_AUTH');
    assertNoStack(r);
    const plain = coffer(['vsphere', 'inventory', url, '--insecure-tls'], { ...env, COFFER_VSPHERE_PASSWORD: 'wrong' });
    assert.equal(plain.code, 22);
    assert.match(plain.stderr, /VSPHERE_AUTH/);
    assertNoStack(plain);
  });

  test('no credentials, an unknown VM, an unreachable vCenter: clear errors', () => {
    expectError(
      coffer(['vsphere', 'inventory', url, '--json', '--insecure-tls'], {
        COFFER_VSPHERE_USER: '',
        COFFER_VSPHERE_PASSWORD: '',
      }),
      2,
      'USAGE',
    );
    expectError(coffer(['vsphere', 'inventory', `${url}/no-such-vm`, '--json', '--insecure-tls'], env), 9, 'NOT_FOUND');
    const down = coffer(['vsphere', 'inventory', 'vsphere://127.0.0.1:1', '--json', '--insecure-tls'], env);
    expectError(down, 24, 'VSPHERE_FAULT');
    assertNoStack(down);
  });
});

// vcsim 0.24 ignores maxObjects and answers in one page: ContinueRetrievePropertiesEx paging is unit-tested in
// src/vsphere/property-collector.test.ts with a stand-in client.
describe('coffer vsphere inventory of a larger vCenter (120 VMs)', () => {
  let vc: Vcsim;
  before(async () => {
    vc = await startVcsim({ vms: 60 }); // 120 VMs + hosts, pools, folders
  });
  after(async () => vc?.stop());

  test('every VM is listed', () => {
    const env = { COFFER_VSPHERE_USER: vc.username, COFFER_VSPHERE_PASSWORD: vc.password };
    const r = expectOk(
      coffer(['vsphere', 'inventory', `vsphere://${vc.host}:${vc.port}`, '--json', '--insecure-tls'], env),
    );
    assert.equal(r.vms.length, vc.vms.length);
    assert.ok(vc.vms.length > 100);
    assert.deepEqual(r.vms.map((v: any) => v.moref).sort(), vc.vms.map((v) => v.ref).sort());
  });
});
