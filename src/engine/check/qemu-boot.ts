import { spawn, type ChildProcess } from 'node:child_process';
import { constants as FS } from 'node:fs';
import { access, copyFile } from 'node:fs/promises';
import { cpus, freemem } from 'node:os';
import { join } from 'node:path';
import { CofferError, type Op } from '../../shared/index.js';
import { GUEST_AGENT_PORT, waitForGuestAgent } from './guest-agent.js';

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
  /** time limit until the success signal */
  timeoutMs: number;
  /** the success signal: `marker` on the serial console (default), or an answer of the guest agent on `agentSocket` */
  until?: 'marker' | 'agent';
  /** a Unix socket path for QEMU's guest agent channel (virtio-serial port org.qemu.guest_agent.0), QEMU listens */
  agentSocket?: string;
  /** a Unix socket path for QMP, QEMU listens */
  qmpSocket?: string;
  /** user networking restricted to these forwards (127.0.0.1:hostPort -> guestPort); none: no network at all */
  forwards?: { guestPort: number; hostPort: number }[];
  /** the console as it arrives (e.g. to a file); optional */
  onConsole?: (text: string) => void;
  /**
   * called once the success signal came, while the VM keeps running (e.g. a boot script); QEMU is stopped when it
   * settles, or earlier when the signal fires. Its abort signal fires when QEMU ended by itself meanwhile.
   */
  whileRunning?: (vmEnded: AbortSignal) => Promise<void>;
}

export interface QemuRun {
  /** the success signal came (the marker, or the agent's answer) */
  markerSeen: boolean;
  /** how the wait for the success signal ended: marker, agent, timeout, qemu exited (code), agent-error, cancelled */
  ended: 'marker' | 'agent' | 'timeout' | 'exit' | 'cancelled' | 'agent-error';
  /** with ended agent-error: the GUEST_AGENT_PROTOCOL message */
  agentError?: string;
  exitCode: number | null;
  accel: 'kvm' | 'tcg';
  /** time to the success signal, or until it ended without it */
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
 * Boots the disks served on `sockets` in QEMU until the success signal (`marker` on the serial console, or the guest
 * agent's answer on `agentSocket`), QEMU exits, the time limit passes or the signal fires; after the success signal
 * `whileRunning` runs with the VM still up. Never writes the point: `-snapshot` keeps every guest write in a
 * temporary overlay in `workDir` (and the NBD exports are read-only anyway). No network (`-nic none`) unless
 * `forwards`: then user networking with `restrict=on` (the guest reaches nothing) and only those ports forwarded from
 * 127.0.0.1. No display (`-nographic`, the serial console on a pipe), no reboot loop (`-no-reboot`). QEMU is killed
 * by its pid on every path, also when this process exits.
 */
export async function runQemu(o: QemuRunOptions): Promise<QemuRun> {
  const accel: 'kvm' | 'tcg' = (await kvmUsable()) ? 'kvm' : 'tcg';
  const waitFor = o.until ?? 'marker';
  if (waitFor === 'agent' && !o.agentSocket) throw new CofferError('USAGE', 'the agent signal needs agentSocket');
  const args = qemuArgs(o, accel);
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
  let console = '';
  let stderr = '';
  let ended: QemuRun['ended'] | undefined;
  let agentError: string | undefined;
  let elapsedMs: number | undefined;
  const child: ChildProcess = spawn(QEMU_BINARY, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: o.workDir, LC_ALL: 'C' },
  });
  const vmEnded = new AbortController();
  const closed = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      vmEnded.abort();
      resolve(code);
    }),
  );
  const kill = () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  let after: Promise<void> = Promise.resolve();
  /** the wait for the success signal ended: `why` */
  const finish = (why: QemuRun['ended']) => {
    if (ended !== undefined) {
      if (why === 'cancelled') kill(); // a cancel while the script runs stops the VM too
      return;
    }
    ended = why;
    elapsedMs = Date.now() - started;
    clearTimeout(timer);
    if ((why === 'marker' || why === 'agent') && o.whileRunning) {
      after = o
        .whileRunning(vmEnded.signal)
        .catch(() => undefined)
        .finally(kill);
    } else kill();
  };
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
    if (waitFor === 'marker' && ended === undefined && markerAt(console.slice(from)) >= 0) finish('marker');
    if (console.length > BOOT_LIMITS.consoleBytes) console = console.slice(-BOOT_LIMITS.consoleBytes);
  });
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-4000)));
  child.on('error', (e) => {
    stderr += `\n${e.message}`;
  });
  if (waitFor === 'agent') {
    const stopAgent = new AbortController();
    vmEnded.signal.addEventListener('abort', () => stopAgent.abort(), { once: true });
    o.signal?.addEventListener('abort', () => stopAgent.abort(), { once: true });
    waitForGuestAgent(o.agentSocket!, { timeoutMs: o.timeoutMs, signal: stopAgent.signal }).then(
      (answered) => {
        if (answered) finish('agent');
      },
      (e: unknown) => {
        agentError = e instanceof CofferError ? `${e.code}: ${e.message}` : String(e);
        finish('agent-error');
      },
    );
  }
  const code = await closed;
  await after;
  clearTimeout(timer);
  o.signal?.removeEventListener('abort', onAbort);
  process.removeListener('exit', kill);
  const why = ended ?? 'exit';
  return {
    markerSeen: why === 'marker' || why === 'agent',
    ended: why,
    exitCode: why === 'exit' ? code : null,
    ...(agentError ? { agentError } : {}),
    accel,
    elapsedMs: elapsedMs ?? Date.now() - started,
    console,
    stderr: stderr.trim(),
  };
}

/** QEMU's command line without firmware and disks. */
function qemuArgs(o: QemuRunOptions, accel: 'kvm' | 'tcg'): string[] {
  const net = o.forwards?.length
    ? [
        '-nic',
        `user,model=e1000,restrict=on${o.forwards
          .map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`)
          .join('')}`,
      ]
    : ['-nic', 'none'];
  const agent = o.agentSocket
    ? [
        '-chardev',
        `socket,id=qga0,path=${qarg(o.agentSocket)},server=on,wait=off`,
        '-device',
        'virtio-serial-pci,id=coffer-serial0',
        '-device',
        `virtserialport,bus=coffer-serial0.0,chardev=qga0,name=${GUEST_AGENT_PORT}`,
      ]
    : [];
  const qmp = o.qmpSocket ? ['-qmp', `unix:${qarg(o.qmpSocket)},server=on,wait=off`] : [];
  return [
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
    ...net,
    ...agent,
    ...qmp,
    '-no-reboot',
    '-snapshot',
    '-boot',
    'order=c,strict=on',
    '-name',
    'coffer-boot-check',
  ];
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
