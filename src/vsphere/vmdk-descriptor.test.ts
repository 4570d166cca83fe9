// VMDK descriptor parsing and extent resolution (untrusted text from a datastore): coded errors, never a raw throw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { parseVmdkDescriptor, resolveExtent, sniffVmdk } from './vmdk-descriptor.js';

const DESC = `# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="vmfs"

# Extent description
RW 8388608 VMFS "disk1-flat.vmdk"

ddb.uuid = "60 00 C2 9a 11 22 33 44-55 66 77 88 99 aa bb cc"
`;

const layoutError = (f: () => unknown) =>
  assert.throws(f, (e: unknown) => e instanceof CofferError && e.code === 'VSPHERE_DISK_LAYOUT');

test('sniff: descriptor, sparse headers, anything else unknown (never "flat")', () => {
  assert.equal(sniffVmdk(Buffer.from(DESC)), 'descriptor');
  assert.equal(sniffVmdk(Buffer.from('KDMV\x01\x00\x00\x00')), 'sparse');
  assert.equal(sniffVmdk(Buffer.from('COWD')), 'cowd');
  assert.equal(sniffVmdk(Buffer.alloc(0)), 'unknown');
  assert.equal(sniffVmdk(Buffer.alloc(4096)), 'unknown');
  assert.equal(sniffVmdk(Buffer.from('hello')), 'unknown');
});

test('parse: extents, createType, uuid, parent', () => {
  const d = parseVmdkDescriptor(DESC, 'x');
  assert.equal(d.createType, 'vmfs');
  assert.equal(d.parentCID, 'ffffffff');
  assert.equal(d.uuid, '6000c29a-1122-3344-5566-778899aabbcc');
  assert.deepEqual(d.extents, [
    { access: 'RW', sectors: 8388608, type: 'VMFS', file: 'disk1-flat.vmdk', offsetSectors: 0 },
  ]);
  const two = parseVmdkDescriptor(
    '# Disk DescriptorFile\nRW 100 FLAT "a-f001.vmdk" 0\nRW 50 FLAT "a-f002.vmdk" 0\nRW 10 ZERO\n',
    'x',
  );
  assert.equal(two.extents.length, 3);
  assert.equal(two.extents[2]!.type, 'ZERO');
});

test('parse: hostile descriptors are VSPHERE_DISK_LAYOUT', () => {
  layoutError(() => parseVmdkDescriptor('# Disk DescriptorFile\n', 'x')); // no extents
  layoutError(() => parseVmdkDescriptor('# Disk DescriptorFile\nRW abc VMFS "x"\n', 'x'));
  layoutError(() => parseVmdkDescriptor('# Disk DescriptorFile\nRW 99999999999999999 VMFS "x"\n', 'x'));
  layoutError(() => parseVmdkDescriptor('# Disk DescriptorFile\nRW 10 VMFS\n', 'x'));
  layoutError(() => parseVmdkDescriptor(`# Disk DescriptorFile\n${'#'.repeat(70000)}\nRW 10 VMFS "x"\n`, 'x'));
});

test('resolve: relative, absolute, vsan://, devices; escapes refused', () => {
  const at = { datastore: 'ds1', path: 'vm/disk1.vmdk' };
  assert.deepEqual(resolveExtent('disk1-flat.vmdk', at), {
    kind: 'file',
    datastore: 'ds1',
    path: 'vm/disk1-flat.vmdk',
  });
  assert.deepEqual(resolveExtent('../other/x-flat.vmdk', at), {
    kind: 'file',
    datastore: 'ds1',
    path: 'other/x-flat.vmdk',
  });
  assert.deepEqual(resolveExtent('/vmfs/volumes/ds2/vm2/y-flat.vmdk', at), {
    kind: 'file',
    datastore: 'ds2',
    path: 'vm2/y-flat.vmdk',
  });
  assert.deepEqual(
    resolveExtent('/vmfs/volumes/5f00-aa/vm2/y-flat.vmdk', at, (v) => (v === '5f00-aa' ? 'ds3' : undefined)),
    { kind: 'file', datastore: 'ds3', path: 'vm2/y-flat.vmdk' },
  );
  assert.deepEqual(resolveExtent('vsan://5253b4d0-2c5d-8c63-1d3b-ab0a5eb0a9d0', at), {
    kind: 'vsan-object',
    objectId: '5253b4d0-2c5d-8c63-1d3b-ab0a5eb0a9d0',
  });
  assert.deepEqual(resolveExtent('/vmfs/devices/disks/naa.600a', at), {
    kind: 'device',
    path: '/vmfs/devices/disks/naa.600a',
  });
  layoutError(() => resolveExtent('../../../etc/passwd', at));
  layoutError(() => resolveExtent('/etc/passwd', at));
  layoutError(() => resolveExtent('vsan://../x', at));
  layoutError(() => resolveExtent('/vmfs/volumes/ds2', at));
});
