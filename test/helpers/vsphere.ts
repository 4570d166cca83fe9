// Helpers of the vSphere tests on top of the vcsim harness (test/helpers/vcsim.ts).
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  dataLocalPathOf,
  retrieveProperties,
  soapCall,
  waitTask,
  xmlAll,
  xmlText,
  type Vcsim,
  type VcSession,
} from './vcsim.js';

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

/**
 * VMware VDDK has no simulator and is not redistributable, and Debian's nbdkit has no vddk plugin: this puts the
 * stand-in (test/fixtures/vcsim/nbdkit-vddk-standin.sh) on PATH as `nbdkit` under `dir`. It checks Coffer's arguments
 * as nbdkit's vddk plugin documents them (against this vcsim's user, password and SHA-1 thumbprint) and serves each
 * disk's data file with the real nbdkit file plugin: read-only from a snapshot (-r, snapshot=), or read-write (no -r,
 * no snapshot=). Its log (ARGS/SERVE/SERVE-RW/REFUSED lines) is `logFile`; `libdir` is an empty VDDK directory.
 */
export function vddkStandin(dir: string, vc: Vcsim): { libdir: string; logFile: string; env: Record<string, string> } {
  const bin = join(dir, 'bin');
  const libdir = join(dir, 'vmware-vix-disklib-distrib');
  const logFile = join(dir, 'standin.log');
  mkdirSync(bin, { recursive: true });
  mkdirSync(libdir, { recursive: true });
  symlinkSync(resolve('test/fixtures/vcsim/nbdkit-vddk-standin.sh'), join(bin, 'nbdkit'));
  const map = join(dir, 'disks.tsv');
  writeFileSync(map, vc.vms.flatMap((v) => v.disks.map((d) => `${d.fileName}\t${d.dataLocalPath}\n`)).join(''));
  return {
    libdir,
    logFile,
    env: {
      PATH: `${bin}:${process.env['PATH']}`,
      STANDIN_REAL_NBDKIT: '/usr/bin/nbdkit',
      STANDIN_MAP: map,
      STANDIN_USER: vc.username,
      STANDIN_PASSWORD: vc.password,
      STANDIN_THUMBPRINT: vc.thumbprintSha1,
      STANDIN_LOG: logFile,
    },
  };
}
