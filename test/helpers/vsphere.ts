// Helpers of the vSphere tests on top of the vcsim harness (test/helpers/vcsim.ts).
import { truncateSync } from 'node:fs';
import { dataLocalPathOf, retrieveProperties, soapCall, waitTask, xmlAll, xmlText, type VcSession } from './vcsim.js';

export * from './vcsim.js';

/** Names of every snapshot of a VM (the whole tree). */
export async function listSnapshots(s: VcSession, vmRef: string): Promise<string[]> {
  const xml = await retrieveProperties(s, 'VirtualMachine', vmRef, ['snapshot']);
  const trees = xmlAll(xml, 'rootSnapshotList').join('');
  return [...trees.matchAll(/<(?:\w+:)?name>([^<]*)<\/(?:\w+:)?name>/g)]
    .map((m) => m[1]!)
    .filter((n, i, a) => a.indexOf(n) === i)
    .sort();
}

/**
 * Grows a VM disk to newSizeBytes (ReconfigVM_Task edit of the device as the simulator reports it, so the backing keeps
 * its datastore) and extends its local file. Not in vcsim.ts: only the vSphere tests need it.
 */
export async function growDisk(
  s: VcSession,
  vmRef: string,
  key: number,
  fileName: string,
  newSizeBytes: number,
): Promise<void> {
  const xml = await retrieveProperties(s, 'VirtualMachine', vmRef, ['config.hardware.device']);
  const dev = [...xml.matchAll(/<VirtualDevice [^>]*"VirtualDisk"[\s\S]*?<\/VirtualDevice>/g)]
    .map((m) => m[0])
    .find((d) => d.includes(`<key>${key}</key>`));
  if (!dev) throw new Error(`no disk ${key} on ${vmRef}`);
  const edited = dev
    .replace(/[\w-]+:type=/g, 'xsi:type=')
    .replace(/^<VirtualDevice /, '<device ')
    .replace(/<\/VirtualDevice>$/, '</device>')
    .replace(/<capacityInKB>\d+<\/capacityInKB>/, `<capacityInKB>${newSizeBytes / 1024}</capacityInKB>`)
    .replace(/<capacityInBytes>\d+<\/capacityInBytes>/, `<capacityInBytes>${newSizeBytes}</capacityInBytes>`);
  const r = await soapCall(
    s.vc,
    s,
    'ReconfigVM_Task',
    'VirtualMachine',
    vmRef,
    `<spec><deviceChange><operation>edit</operation>${edited}</deviceChange></spec>`,
  );
  await waitTask(s, xmlText(r, 'returnval')!);
  truncateSync(dataLocalPathOf(s.vc, fileName), newSizeBytes); // the launcher rewrites the descriptor's extent size
}
