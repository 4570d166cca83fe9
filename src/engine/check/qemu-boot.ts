import { spawn, type ChildProcess } from 'node:child_process';
import { constants as FS } from 'node:fs';
import { access, copyFile } from 'node:fs/promises';
import { cpus, freemem } from 'node:os';
import { join } from 'node:path';
import { CofferError, type Op } from '../../shared/index.js';

/** The QEMU binary of boot checks (x86-64 guests: what vSphere runs). */
export const QEMU_BINARY = 'qemu-system-x86_64';

/** Bounds of the boot VM: a check needs the guest to start, not to run its workload. */
export const BOOT_LIMITS = {
  /** memory when the stored configuration has none, and the cap (also at most half the free memory) */
  defaultMemoryMB: 1024,
  maxMemoryMB: 4096,
  minMemoryMB: 128,
  /** vCPUs: the stored count, at most this and at most the host's cores */
  maxCpus: 4,
  /** console text kept (the end of it) */
  consoleBytes: 64 * 1024,
  /** console lines and characters of the tail stored in the record */
  tailLines: 40,
  tailChars: 4000,
} as const;

/** OVMF (UEFI firmware for QEMU, Debian package `ovmf`): code and variable-store templates, first found wins. */
const OVMF_PAIRS: readonly [string, string][] = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
];

export interface QemuRunOptions extends Op {
  /** NBD Unix sockets of the point's disks, in disk order (disk 0 boots) */
  sockets: string[];
  /** a private directory: QEMU's -snapshot overlay and the UEFI variable store go there */
  workDir: string;
  firmware: 'bios' | 'efi';
  memoryMB: number;
  cpus: number;
  marker: string;
  timeoutMs: number;
  /** the console as it arrives (e.g. to a file); optional */
  onConsole?: (text: string) => void;
}

export interface QemuRun {
  /** the marker was seen on the serial console */
  markerSeen: boolean;
  /** why it ended without the marker: timeout, qemu exited (code), cancelled */
  ended: 'marker' | 'timeout' | 'exit' | 'cancelled';
  exitCode: number | null;
  accel: 'kvm' | 'tcg';
  elapsedMs: number;
  /** the end of the serial console */
  console: string;
  /** the end of QEMU's own stderr */
  stderr: string;
}

/** KVM when /dev/kvm can be opened read-write by this process, else TCG (software emulation, ~10-50x slower). */
export async function kvmUsable(): Promise<boolean> {
  return access('/dev/kvm', FS.R_OK | FS.W_OK).then(
    () => true,
    () => false,
  );
}

/** The OVMF code and variable templates installed here, or undefined. */
export async function findOvmf(): Promise<{ code: string; vars: string } | undefined> {
  for (const [code, vars] of OVMF_PAIRS) {
    const ok = await Promise.all([access(code), access(vars)]).then(
      () => true,
      () => false,
    );
    if (ok) return { code, vars };
  }
  return undefined;
}

/** Throws QEMU_MISSING unless `qemu-system-x86_64` is on the PATH and starts (`-version`). */
export async function requireQemu(): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(QEMU_BINARY, ['-version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new CofferError(
          'QEMU_MISSING',
          e.code === 'ENOENT'
            ? `the boot check needs ${QEMU_BINARY}, which is not installed`
            : `${QEMU_BINARY} could not be started: ${e.message}`,
          { hint: 'install it: apt-get install --no-install-recommends qemu-system-x86 (docs/OPERATIONS.md)' },
        ),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(/version ([0-9][^\s,]*)/.exec(out)?.[1] ?? 'unknown');
      else reject(new CofferError('QEMU_MISSING', `${QEMU_BINARY} -version exited with ${code}`));
    });
  });
}

/** Memory and vCPUs of the boot VM: the stored configuration's, capped (BOOT_LIMITS); `memoryMB` overrides. */
export function bootSize(
  vmConfig: Record<string, unknown> | undefined,
  override: { memoryMB?: number | undefined } = {},
): { memoryMB: number; cpus: number } {
  const int = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : undefined);
  const freeCap = Math.max(BOOT_LIMITS.minMemoryMB, Math.floor(freemem() / 2 / 2 ** 20));
  const wanted = override.memoryMB ?? int(vmConfig?.['memoryMB']) ?? BOOT_LIMITS.defaultMemoryMB;
  const memoryMB = Math.max(BOOT_LIMITS.minMemoryMB, Math.min(wanted, BOOT_LIMITS.maxMemoryMB, freeCap));
  const cpus = Math.max(1, Math.min(int(vmConfig?.['numCPU']) ?? 1, BOOT_LIMITS.maxCpus, cpus_()));
  return { memoryMB, cpus };
}

function cpus_(): number {
  return Math.max(1, cpus().length);
}

/** `,` is QEMU's option separator; a literal comma in a value is written twice. */
function qarg(s: string): string {
  return s.replaceAll(',', ',,');
}

/**
 * Boots the disks served on `sockets` in QEMU until `marker` appears on the serial console, QEMU exits, the time
 * limit passes or the signal fires. Never writes the point: `-snapshot` keeps every guest write in a temporary
 * overlay in `workDir` (and the NBD exports are read-only anyway). No network (`-nic none`), no display
 * (`-nographic`, the serial console on a pipe), no reboot loop (`-no-reboot`). QEMU is killed by its pid on every
 * path, also when this process exits.
 */
export async function runQemu(o: QemuRunOptions): Promise<QemuRun> {
  const accel: 'kvm' | 'tcg' = (await kvmUsable()) ? 'kvm' : 'tcg';
  const args = [
    '-nodefaults',
    '-machine',
    `pc,accel=${accel}`,
    ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m',
    String(o.memoryMB),
    '-smp',
    String(o.cpus),
    '-nographic',
    '-vga',
    'std',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-nic',
    'none',
    '-no-reboot',
    '-snapshot',
    '-boot',
    'order=c,strict=on',
    '-name',
    'coffer-boot-check',
  ];
  if (o.firmware === 'efi') {
    const ovmf = await findOvmf();
    if (!ovmf) throw new CofferError('NOT_FOUND', 'no OVMF firmware installed');
    const vars = join(o.workDir, 'OVMF_VARS.fd');
    await copyFile(ovmf.vars, vars);
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${qarg(ovmf.code)}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${qarg(vars)}`);
  }
  // the first four disks on IDE (every guest has a driver for it, and SeaBIOS/OVMF boot from it), the rest virtio
  o.sockets.forEach((sock, i) => {
    const bus = i < 4 ? `if=ide,index=${i}` : 'if=virtio';
    args.push('-drive', `${bus},format=raw,file.driver=nbd,file.path=${qarg(sock)},cache=unsafe`);
  });
  const started = Date.now();
  return new Promise<QemuRun>((resolve) => {
    let console = '';
    let stderr = '';
    let ended: QemuRun['ended'] | undefined;
    const child: ChildProcess = spawn(QEMU_BINARY, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: o.workDir, LC_ALL: 'C' },
    });
    const kill = () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const finish = (why: QemuRun['ended']) => {
      ended ??= why;
      kill();
    };
    process.once('exit', kill);
    const timer = setTimeout(() => finish('timeout'), o.timeoutMs);
    const onAbort = () => finish('cancelled');
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const markerAt = (s: string) => s.indexOf(o.marker);
    child.stdout!.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      o.onConsole?.(text);
      // search where the marker can newly be: the old tail the marker's length back, and the new text
      const from = Math.max(0, console.length - o.marker.length);
      console += text;
      if (ended === undefined && markerAt(console.slice(from)) >= 0) finish('marker');
      if (console.length > BOOT_LIMITS.consoleBytes) console = console.slice(-BOOT_LIMITS.consoleBytes);
    });
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-4000)));
    child.on('error', (e) => {
      stderr += `\n${e.message}`;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      process.removeListener('exit', kill);
      const why = ended ?? 'exit';
      resolve({
        markerSeen: why === 'marker',
        ended: why,
        exitCode: why === 'exit' ? code : null,
        accel,
        elapsedMs: Date.now() - started,
        console,
        stderr: stderr.trim(),
      });
    });
  });
}

/** The last lines of the console, control characters (ANSI escapes, CR) removed, bounded (BOOT_LIMITS). */
export function consoleTail(console: string): string {
  const clean = console
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\x1bc/g, '')
    .replace(/\r/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  const lines = clean.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-BOOT_LIMITS.tailLines).join('\n').slice(-BOOT_LIMITS.tailChars);
}
