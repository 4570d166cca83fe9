import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../format/index.js';
import { readPartitionTable } from '../../fs/index.js';
import { NbdServer } from '../../nbd/index.js';
import type { Repository } from '../../repository/index.js';
import type { Op } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import { RestorePointDevice } from '../mount.js';
import { describeScript, runBootScript, type BootScriptResult } from './boot-script.js';
import { throwIfCancelled } from './fsck-tools.js';
import { bootSize, consoleTail, findOvmf, requireQemu, runQemu } from './qemu-boot.js';

/** Boot check defaults (the CLI's and the policy's). */
export const BOOT_DEFAULTS = { marker: 'login:', timeoutMs: 300_000, scriptTimeoutMs: 300_000 } as const;

/** The serial log file a boot script reads is cut here (a guest that floods its console cannot fill the disk). */
export const SERIAL_LOG_MAX_BYTES = 16 * 2 ** 20;

export interface BootCheckOptions extends Op {
  /** the text on the serial console that means "booted" (default `login:`) */
  marker?: string | undefined;
  /** time limit of the whole boot (default 300 s) */
  timeoutMs?: number | undefined;
  /** overrides the stored configuration's memory (still capped) */
  memoryMB?: number | undefined;
  /** the console as it arrives */
  onConsole?: ((text: string) => void) | undefined;
  /** success = the QEMU guest agent answers guest-sync and guest-ping (instead of the marker) */
  agent?: boolean | undefined;
  /** an executable run on the host after the success signal, the VM still running (absolute path, checked) */
  script?: string | undefined;
  /** the script's time limit (default 300 s) */
  scriptTimeoutMs?: number | undefined;
  /** guest TCP ports forwarded from 127.0.0.1 (user networking, restrict=on); none: no network */
  forwards?: number[] | undefined;
}

/** The boot part of a check record (FORMAT.md §8.1, `boot`, version 2; version 1 had no signal/forwards/script). */
export interface BootCheck {
  version: 2;
  /**
   * true: the success signal came (and the script, if any, passed); false: the guest did not boot to it or the
   * script failed; null: not booted here (`note` says why)
   */
  ok: boolean | null;
  /** the success signal waited for: the marker on the serial console, or the guest agent's answer */
  signal: 'marker' | 'agent';
  marker: string;
  firmware: 'bios' | 'efi';
  accel: 'kvm' | 'tcg' | null;
  memoryMB: number;
  cpus: number;
  /** QEMU's version, null when it did not run */
  qemu: string | null;
  /** time to the success signal, or until it ended */
  elapsedMs: number;
  timeoutMs: number;
  /**
   * how the wait for the success signal ended: marker, agent (it answered), timeout, exit (QEMU exited: guest powered
   * off, crashed, or QEMU failed), agent-error (its answer was not the protocol), not-run
   */
  ended: 'marker' | 'agent' | 'timeout' | 'exit' | 'agent-error' | 'not-run';
  exitCode: number | null;
  /** forwarded guest ports (--boot-forward), with the host port used this time */
  forwards?: { guestPort: number; hostPort: number }[];
  /** the boot script, when one was given and the success signal came */
  script?: BootScriptResult;
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
  const signal = opts.agent ? ('agent' as const) : ('marker' as const);
  const base = { version: 2 as const, signal, marker, qemu, timeoutMs, ...size };
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
    const forwards = await freePorts(opts.forwards ?? []);
    const agentSocket = opts.agent ? join(dir, 'qga.sock') : undefined;
    const qmpSocket = opts.script ? join(dir, 'qmp.sock') : undefined;
    const serialLog = join(dir, 'serial.log');
    const log = opts.script ? createWriteStream(serialLog) : undefined;
    let logged = 0;
    let script: BootScriptResult | undefined;
    const run = await runQemu({
      sockets,
      workDir: dir,
      firmware,
      ...size,
      marker,
      timeoutMs,
      until: signal,
      ...(agentSocket ? { agentSocket } : {}),
      ...(qmpSocket ? { qmpSocket } : {}),
      ...(forwards.length ? { forwards } : {}),
      signal: opts.signal,
      onConsole: (text) => {
        if (log && logged < SERIAL_LOG_MAX_BYTES) {
          const b = Buffer.from(text, 'utf8').subarray(0, SERIAL_LOG_MAX_BYTES - logged);
          logged += b.length;
          log.write(b);
        }
        opts.onConsole?.(text);
      },
      ...(opts.script
        ? {
            whileRunning: async () => {
              // what was on the console up to the signal is in the file before the script reads it
              await new Promise<void>((resolve) => log!.write('', () => resolve()));
              script = await runBootScript(
                opts.script!,
                {
                  COFFER_POINT_ID: manifest.id,
                  COFFER_BOOT_SERIAL_LOG: serialLog,
                  COFFER_BOOT_QMP_SOCKET: qmpSocket!,
                  ...(opts.agent ? { COFFER_BOOT_AGENT_SOCKET: agentSocket! } : {}),
                  COFFER_BOOT_HOST: '127.0.0.1',
                  COFFER_BOOT_FORWARDS: forwards.map((f) => `${f.guestPort}=${f.hostPort}`).join(' '),
                  ...Object.fromEntries(forwards.map((f) => [`COFFER_BOOT_PORT_${f.guestPort}`, String(f.hostPort)])),
                },
                { timeoutMs: opts.scriptTimeoutMs ?? BOOT_DEFAULTS.scriptTimeoutMs, cwd: dir, signal: opts.signal },
              );
            },
          }
        : {}),
    });
    if (log) await new Promise<void>((resolve) => log.end(() => resolve()));
    throwIfCancelled(op);
    const tail = consoleTail(run.console);
    const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
    const what = signal === 'agent' ? 'the guest agent did not answer' : `"${marker}" not seen on the serial console`;
    const before = signal === 'agent' ? 'the guest agent answered' : `"${marker}" appeared on the serial console`;
    const note =
      run.ended === 'marker' || run.ended === 'agent'
        ? script && !script.ok
          ? describeScript(script)
          : undefined
        : run.ended === 'agent-error'
          ? `the guest agent's answer is not its protocol (${run.agentError ?? 'GUEST_AGENT_PROTOCOL'})`
          : run.ended === 'timeout'
            ? `${what} within ${secs(timeoutMs)}` +
              `${tail ? `; console ends: ${lastLine(tail)}` : '; the console stayed empty'}`
            : `QEMU exited (code ${run.exitCode}) after ${secs(run.elapsedMs)} before ${before}` +
              `${run.stderr ? `: ${lastLine(run.stderr)}` : ''}` +
              `${tail ? `; console ends: ${lastLine(tail)}` : ''}`;
    return {
      ...base,
      firmware,
      ok: run.markerSeen && (script === undefined || script.ok),
      accel: run.accel,
      elapsedMs: run.elapsedMs,
      ended: run.ended === 'cancelled' ? 'exit' : run.ended,
      exitCode: run.exitCode,
      ...(forwards.length ? { forwards } : {}),
      ...(script ? { script } : {}),
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

/** A free 127.0.0.1 TCP port for each guest port (bound and released: QEMU binds it right after). */
async function freePorts(guestPorts: number[]): Promise<{ guestPort: number; hostPort: number }[]> {
  const out: { guestPort: number; hostPort: number }[] = [];
  for (const guestPort of guestPorts) {
    const hostPort = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    out.push({ guestPort, hostPort });
  }
  return out;
}

function lastLine(s: string): string {
  return (s.trim().split('\n').at(-1) ?? '').slice(0, 300);
}
