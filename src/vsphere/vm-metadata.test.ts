// The stored metadata of a VM (FORMAT.md §6.1.2) read back from untrusted JSON, and the datacenter choice of a restore
// (a datastore name that exists in several datacenters).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import type { Inventory } from './inventory.js';
import { parseStoredConfig } from './vm-config.js';
import { targetDatastore } from './vm-restore.js';
import { MoRef } from './xml.js';

const base = {
  kind: 'vsphere-vm',
  version: 1,
  name: 'vm1',
  moref: 'vm-1',
  snapshotName: 's',
  controllers: [],
  nics: [],
  disks: [{ key: 2000, capacityBytes: 1024, fileName: '[ds] vm1/vm1.vmdk', datastore: 'ds' }],
};

const corrupt = (v: Record<string, unknown>) =>
  assert.throws(
    () => parseStoredConfig(v, 'p1'),
    (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT',
    JSON.stringify(v),
  );

test('storage policy, tags and custom attributes: read when present, absent in older restore points', () => {
  const old = parseStoredConfig(base, 'p1');
  assert.equal(old.tags, undefined);
  assert.equal(old.customAttributes, undefined);
  assert.equal('storagePolicy' in old.disks[0]!, false);
  const cfg = parseStoredConfig(
    {
      ...base,
      disks: [{ ...base.disks[0], storagePolicy: { id: 'abc', name: 'Gold' } }],
      tags: [{ category: 'env', name: 'prod' }],
      customAttributes: [{ name: 'owner', value: 'team-a' }],
    },
    'p1',
  );
  assert.deepEqual(cfg.disks[0]!.storagePolicy, { id: 'abc', name: 'Gold' });
  assert.deepEqual(cfg.tags, [{ category: 'env', name: 'prod' }]);
  assert.deepEqual(cfg.customAttributes, [{ name: 'owner', value: 'team-a' }]);
  assert.equal(
    parseStoredConfig({ ...base, disks: [{ ...base.disks[0], storagePolicy: null }] }, 'p').disks[0]!.storagePolicy,
    null,
  );
});

test('hostile metadata is CORRUPT, never a crash', () => {
  corrupt({ ...base, disks: [{ ...base.disks[0], storagePolicy: 'Gold' }] });
  corrupt({ ...base, disks: [{ ...base.disks[0], storagePolicy: { id: 1, name: 'Gold' } }] });
  corrupt({ ...base, disks: [{ ...base.disks[0], storagePolicy: { id: 'a' } }] });
  corrupt({ ...base, tags: 'env/prod' });
  corrupt({ ...base, tags: [{ category: 'env' }] });
  corrupt({ ...base, tags: [null] });
  corrupt({ ...base, tags: Array.from({ length: 5000 }, () => ({ category: 'a', name: 'b' })) });
  corrupt({ ...base, customAttributes: [{ name: 'x', value: 42 }] });
  corrupt({ ...base, customAttributes: [{ name: 'x'.repeat(70_000), value: '' }] });
  corrupt({ ...base, customAttributes: {} });
});

const ent = (type: string, value: string, path: string) => ({
  ref: new MoRef(type, value),
  name: path.split('/').at(-1)!,
  parent: undefined,
  path,
});
const inv = {
  datacenters: [ent('Datacenter', 'dc-1', '/DC0'), ent('Datacenter', 'dc-2', '/DR')],
  datastores: [
    { ...ent('Datastore', 'ds-1', '/DC0/datastore/LocalDS_0'), datacenter: 'DC0' },
    { ...ent('Datastore', 'ds-2', '/DR/datastore/LocalDS_0'), datacenter: 'DR' },
    { ...ent('Datastore', 'ds-3', '/DR/datastore/vsan'), datacenter: 'DR' },
  ],
} as unknown as Inventory;

test('a datastore name in two datacenters: AMBIGUOUS unless --datacenter chooses; unknown datacenter NOT_FOUND', () => {
  assert.throws(
    () => targetDatastore(inv, 'LocalDS_0'),
    (e: unknown) => e instanceof CofferError && e.code === 'AMBIGUOUS' && /--datacenter \(DC0, DR\)/.test(e.hint ?? ''),
  );
  assert.equal(targetDatastore(inv, 'LocalDS_0', 'DR').datastore.ref.value, 'ds-2');
  assert.equal(targetDatastore(inv, 'LocalDS_0', '/DC0').dc.name, 'DC0');
  assert.equal(targetDatastore(inv, 'vsan').dc.name, 'DR');
  assert.throws(
    () => targetDatastore(inv, 'vsan', 'DC0'),
    (e: unknown) =>
      e instanceof CofferError && e.code === 'NOT_FOUND' && /in datacenter DC0 \(have LocalDS_0\)/.test(e.message),
  );
  assert.throws(
    () => targetDatastore(inv, 'LocalDS_0', 'Nowhere'),
    (e: unknown) => e instanceof CofferError && e.code === 'NOT_FOUND' && /have DC0, DR/.test(e.message),
  );
});
