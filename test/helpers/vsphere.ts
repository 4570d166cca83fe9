// Helpers of the vSphere tests on top of the vcsim harness (test/helpers/vcsim.ts).
import { retrieveProperties, xmlAll, type VcSession } from './vcsim.js';

export * from './vcsim.js';

/** Names of every snapshot of a VM (the whole tree). */
export async function listSnapshots(s: VcSession, vmRef: string): Promise<string[]> {
  const xml = await retrieveProperties(s, 'VirtualMachine', vmRef, ['snapshot']);
  const trees = xmlAll(xml, 'rootSnapshotList').join('');
  return [...trees.matchAll(/<(?:\w+:)?name>([^<]*)<\/(?:\w+:)?name>/g)].map((m) => m[1]!).filter((n, i, a) => a.indexOf(n) === i).sort();
}
