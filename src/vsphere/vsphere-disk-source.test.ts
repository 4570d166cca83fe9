// QueryChangedDiskAreas handling with replies a real vCenter does not send (a stand-in client: vcsim answers
// correctly, these are the hostile cases): paging, merging, areas outside the window, a reply that never advances.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import type { VimClient } from './vim-client.js';
import { VsphereDiskSource } from './vsphere-disk-source.js';
import { MoRef, parseXml } from './xml.js';

const KiB = 1024;

function source(
  size: number,
  reply: (startOffset: number, changeId: string) => string,
  changeId: string | null = '52 aa/1',
) {
  const calls: [number, string][] = [];
  const client = {
    async invoke(method: string, _self: MoRef, args: Record<string, unknown>) {
      assert.equal(method, 'QueryChangedDiskAreas');
      calls.push([args['startOffset'] as number, args['changeId'] as string]);
      return parseXml(
        `<QueryChangedDiskAreasResponse><returnval>` +
          `${reply(args['startOffset'] as number, args['changeId'] as string)}` +
          `</returnval></QueryChangedDiskAreasResponse>`,
      );
    },
  } as unknown as VimClient;
  const src = new VsphereDiskSource({
    client,
    vm: new MoRef('VirtualMachine', 'vm-1'),
    snapshot: new MoRef('VirtualMachineSnapshot', 'snapshot-1'),
    disk: {
      key: 2000,
      label: '',
      capacityBytes: size,
      fileName: '[ds] vm/vm.vmdk',
      datastore: undefined,
      backingType: 'VirtualDiskFlatVer2BackingInfo',
      thinProvisioned: true,
      eagerlyScrub: false,
      diskMode: 'persistent',
      changeId: changeId ?? undefined,
      uuid: undefined,
      controllerKey: 1000,
      unitNumber: 0,
    },
    reader: { description: 'x', read: async () => undefined, close: async () => undefined },
    uri: 'vsphere://test/vm?disk=2000',
  });
  return { src, calls };
}

const page = (start: number, length: number, areas: [number, number][]) =>
  `<startOffset>${start}</startOffset><length>${length}</length>` +
  areas.map(([s, l]) => `<changedArea><start>${s}</start><length>${l}</length></changedArea>`).join('');

async function collect(it: AsyncIterable<{ offset: number; length: number }>) {
  const out = [];
  for await (const e of it) out.push(e);
  return out;
}

test('pages by startOffset until the capacity, merges adjacent and overlapping areas, sorts them', async () => {
  const { src, calls } = source(256 * KiB, (start) =>
    start === 0
      ? page(0, 128 * KiB, [
          [64 * KiB, 64 * KiB],
          [0, 64 * KiB],
        ])
      : page(128 * KiB, 128 * KiB, [
          [128 * KiB, 16 * KiB],
          [200 * KiB, 8 * KiB],
          [204 * KiB, 8 * KiB],
        ]),
  );
  const got = await collect(src.changeTracking!.changedExtents(undefined, '52 aa/0'));
  assert.deepEqual(got, [
    { offset: 0, length: 144 * KiB },
    { offset: 200 * KiB, length: 12 * KiB },
  ]);
  assert.deepEqual(calls, [
    [0, '52 aa/0'],
    [128 * KiB, '52 aa/0'],
  ]);
  assert.equal(src.changeTracking!.token, '52 aa/1');
  assert.equal(src.changeTracking!.needsBaseToken, true);
});

test('hostile replies are VSPHERE_FAULT (protocol), never a hang or a read outside the disk', async () => {
  const bad = [
    () => page(0, 0, []), // never advances
    () => page(4096, 64 * KiB, []), // not the offset asked for
    () => page(0, 64 * KiB, [[60 * KiB, 8 * KiB]]), // area leaves the window
    () => page(0, 64 * KiB, [[-1, 10]]),
    () => page(0, 1 << 30, []), // window far past the disk
    () => '<startOffset>zero</startOffset><length>1</length>',
  ];
  for (const reply of bad) {
    const { src } = source(64 * KiB, reply);
    await assert.rejects(
      collect(src.changeTracking!.changedExtents(undefined, '52 aa/0')),
      (e: unknown) => e instanceof CofferError && e.code === 'VSPHERE_FAULT',
      reply(),
    );
  }
});

test(
  'a fault on the previous changeId becomes changeTrackingUnusable (the engine then reads in full); "*" faults ' +
    'read the whole disk',
  async () => {
    const faulty = {
      async invoke() {
        throw new CofferError('VSPHERE_FAULT', 'vCenter QueryChangedDiskAreas failed: InvalidArgument: changeId', {
          details: { fault: 'InvalidArgument' },
        });
      },
    } as unknown as VimClient;
    const { src } = source(64 * KiB, () => '');
    (src as unknown as { o: { client: VimClient } }).o.client = faulty;
    await assert.rejects(
      collect(src.changeTracking!.changedExtents(undefined, 'old')),
      (e: unknown) => e instanceof CofferError && e.details.changeTrackingUnusable === true,
    );
    assert.deepEqual(await collect(src.dataExtents()), [{ offset: 0, length: 64 * KiB }]);
    // no changeId at all: no change tracking, the whole disk is data
    const none = source(64 * KiB, () => '', null).src;
    assert.equal(none.changeTracking, undefined);
    assert.deepEqual(await collect(none.dataExtents()), [{ offset: 0, length: 64 * KiB }]);
  },
);
