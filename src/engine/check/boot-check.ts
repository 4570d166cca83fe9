import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../format/index.js';
import { readPartitionTable } from '../../fs/index.js';
import { NbdServer } from '../../nbd/index.js';
import type { Repository } from '../../repository/index.js';
import type { Op } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import { RestorePointDevice } from '../mount.js';
import { throwIfCancelled } from './fsck-tools.js';
import { bootSize, consoleTail, findOvmf, requireQemu, runQemu } from './qemu-boot.js';

/** Boot check defaults (the CLI's and the policy's). */
export const BOOT_DEFAULTS = { marker: 'login:', timeoutMs: 300_000 } as const;

export interface BootCheckOptions extends Op {
  /** the text on the serial console that means "booted" (default `login:`) */
  marker?: string | undefined;
  /** time limit of the whole boot (default 300 s) */
  timeoutMs?: number | undefined;
  /** overrides the stored configuration's memory (still capped) */
  memoryMB?: number | undefined;
  /** the console as it arrives */
  onConsole?: ((text: string) => void) | undefined;
}

/** The boot part of a check record (FORMAT.md §8.1, `boot`, version 1). */
export interface BootCheck {
  version: 1;
  /** true: the marker was seen; false: the guest did not boot to it; null: not booted here (`note` says why) */
  ok: boolean | null;
  marker: string;
  firmware: 'bios' | 'efi';
  accel: 'kvm' | 'tcg' | null;
  memoryMB: number;
  cpus: number;
  /** QEMU's version, null when it did not run */
  qemu: string | null;
  /** time to the marker, or until it ended */
  elapsedMs: number;
  timeoutMs: number;
  /** how it ended: marker, timeout, exit (QEMU exited: guest powered off, crashed, or QEMU failed), not-run */
  ended: 'marker' | 'timeout' | 'exit' | 'not-run';
  exitCode: number | null;
  /** why it failed or did not run, in words */
  note?: string;
  /** the last lines of the serial console (at most 40 lines, 4000 chars) */
  console: string;
}

/**
 * Boots a restore point in QEMU (DESIGN.md §Recoverability checks): each disk is served read-only by Coffer's NBD
 * server on a Unix socket in a private directory, straight from the repository (instant recovery), and QEMU boots
 * disk 0 with `-snapshot` (guest writes go to a temporary overlay, never to the point), no network, the serial
 * console on a pipe, KVM where usable. Passes when `marker` appears on the console within the time limit.
 * BIOS boot via SeaBIOS; a VM stored with `firmware: efi` boots with OVMF when installed, else is not booted.
 * QEMU_MISSING when qemu-system-x86_64 is not installed.
 */
export async function bootCheck(
  repo: Repository,
  pool: CodecPool,
  manifest: Manifest,
  opts: BootCheckOptions = {},
): Promise<BootCheck> {
  const op: Op = { signal: opts.signal };
  const qemu = await requireQemu();
  const marker = opts.marker ?? BOOT_DEFAULTS.marker;
  const timeoutMs = opts.timeoutMs ?? BOOT_DEFAULTS.timeoutMs;
  const cfg = manifest.vmConfig?.['kind'] === 'vsphere-vm' ? manifest.vmConfig : undefined;
  let firmware: 'bios' | 'efi' = cfg?.['firmware'] === 'efi' ? 'efi' : 'bios';
  const size = bootSize(cfg, { memoryMB: opts.memoryMB });
  const base = { version: 1 as const, marker, qemu, timeoutMs, ...size };
  const notRun = (note: string): BootCheck => ({
    ...base,
    firmware,
    ok: note.startsWith('!') ? false : null,
    accel: null,
    elapsedMs: 0,
    ended: 'not-run',
    exitCode: null,
    note: note.replace(/^!/, ''),
    console: '',
  });
  if (manifest.disks.length === 0) return notRun('!the restore point has no disk to boot');
  const ovmf = await findOvmf();
  if (firmware === 'efi' && !ovmf)
    return notRun(
      'the VM boots with UEFI firmware (stored configuration: firmware efi) and no OVMF firmware is installed ' +
        'here (Debian package ovmf): not booted; only BIOS VMs boot without it',
    );
  const dir = await mkdtemp(join(tmpdir(), 'coffer-boot-'));
  const devices: RestorePointDevice[] = [];
  const servers: NbdServer[] = [];
  try {
    const sockets: string[] = [];
    for (const [i, d] of manifest.disks.entries()) {
      const dev = await RestorePointDevice.open(repo, pool, await repo.loadIndex(d.indexId, op), { cacheChunks: 32 });
      devices.push(dev);
      if (i === 0 && firmware === 'bios' && (await uefiOnly(dev, op))) {
        if (!ovmf)
          return notRun(
            'disk 0 is UEFI-only (GPT with an EFI system partition and no BIOS boot partition) and no OVMF ' +
              'firmware is installed here (Debian package ovmf): not booted; BIOS cannot boot it',
          );
        firmware = 'efi';
      }
      if (i === 0 && firmware === 'bios') {
        const mbr = dev.sizeBytes >= 512 ? await dev.read(0, 512, op) : Buffer.alloc(0);
        if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa)
          return notRun(
            '!disk 0 has no BIOS boot sector (no 55AA signature in its first sector): nothing to boot ' +
              '(a zeroed or damaged boot sector, or a UEFI-only disk stored without firmware efi)',
          );
      }
      const server = new NbdServer(dev, { description: `coffer boot check disk ${i}` });
      const socket = join(dir, `disk${i}.sock`);
      await server.listenPath(socket);
      servers.push(server);
      sockets.push(socket);
    }
    throwIfCancelled(op);
    const run = await runQemu({
      sockets,
      workDir: dir,
      firmware,
      ...size,
      marker,
      timeoutMs,
      signal: opts.signal,
      ...(opts.onConsole ? { onConsole: opts.onConsole } : {}),
    });
    throwIfCancelled(op);
    const tail = consoleTail(run.console);
    const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
    const note =
      run.ended === 'marker'
        ? undefined
        : run.ended === 'timeout'
          ? `"${marker}" not seen on the serial console within ${secs(timeoutMs)}` +
            `${tail ? `; console ends: ${lastLine(tail)}` : '; the console stayed empty'}`
          : `QEMU exited (code ${run.exitCode}) after ${secs(run.elapsedMs)} before "${marker}" appeared on the ` +
            `serial console${run.stderr ? `: ${lastLine(run.stderr)}` : ''}` +
            `${tail ? `; console ends: ${lastLine(tail)}` : ''}`;
    return {
      ...base,
      firmware,
      ok: run.markerSeen,
      accel: run.accel,
      elapsedMs: run.elapsedMs,
      ended: run.ended === 'cancelled' ? 'exit' : run.ended,
      exitCode: run.exitCode,
      ...(note ? { note } : {}),
      console: tail,
    };
  } finally {
    for (const s of servers) await s.close().catch(() => undefined);
    for (const d of devices) await d.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

const EFI_SYSTEM = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649';

/** A GPT disk with an EFI system partition and no BIOS boot partition (grub's core image) boots only with UEFI. */
async function uefiOnly(dev: RestorePointDevice, op: Op): Promise<boolean> {
  try {
    const t = await readPartitionTable(dev, op);
    const types = new Set(t.partitions.map((p) => p.type.toUpperCase()));
    return t.scheme === 'gpt' && types.has(EFI_SYSTEM) && !types.has(BIOS_BOOT);
  } catch {
    return false; // a damaged table: the BIOS boot below says what happens
  }
}

function lastLine(s: string): string {
  return (s.trim().split('\n').at(-1) ?? '').slice(0, 300);
}
