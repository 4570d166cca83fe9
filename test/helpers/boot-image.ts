import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { COFFER_BIN } from './cli.js';

export const ROOT = resolve(COFFER_BIN, '../../..');
/** vmlinuz of Debian's linux-image package, extracted (not installed) by scripts/setup.sh */
export const KERNEL = join(ROOT, '.tools/boot-kernel/vmlinuz');
/** the virtio (PCI, console) and e1000 modules of that kernel, extracted by scripts/setup.sh; ORDER: load order */
export const KERNEL_MODULES = join(ROOT, '.tools/boot-kernel/modules');
/** the QEMU guest agent installed by scripts/setup.sh (Debian's qemu-guest-agent) */
export const QEMU_GA = '/usr/sbin/qemu-ga';
const MBR_BIN = '/usr/lib/syslinux/mbr/mbr.bin';
const BUSYBOX = '/bin/busybox';
export const MARKER = 'COFFER-BOOT-OK';
/** printed on the serial console by the agent image before the marker (a boot script checks it) */
export const GUEST_NET_LINE = 'COFFER-GUEST network: eth0 up';
/** what the agent image's TCP service on GUEST_TCP_PORT answers */
export const GUEST_TCP_PORT = 7777;
export const GUEST_TCP_REPLY = 'COFFER-GUEST-TCP';

export const qemuMissing =
  spawnSync('qemu-system-x86_64', ['-version'], { stdio: 'ignore' }).status === 0
    ? false
    : 'qemu-system-x86_64 is not installed (scripts/setup.sh installs qemu-system-x86)';

function run(cmd: string, args: string[], opts: { input?: string | Buffer; cwd?: string } = {}): Buffer {
  return execFileSync(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 2 ** 20, ...opts });
}

/** The shared libraries of a binary (ldd), the dynamic loader included. */
function sharedLibraries(bin: string): string[] {
  return [
    ...run('ldd', [bin])
      .toString()
      .matchAll(/(\/\S+) \(0x/g),
  ].map((m) => m[1]!);
}

/**
 * The agent image's /init: busybox applets, the virtio PCI + console and e1000 modules (insmod, in ORDER), Debian's
 * qemu-ga on the virtio-serial port named org.qemu.guest_agent.0 (found in /sys/class/virtio-ports: no udev), eth0
 * at QEMU's user-network address with a TCP service on GUEST_TCP_PORT (busybox nc), then the marker; it keeps
 * running (a boot script talks to it), until QEMU is stopped.
 */
const AGENT_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in $(cat /lib/modules/ORDER); do insmod /lib/modules/$m || echo "COFFER-GUEST insmod $m failed" > /dev/ttyS0; done
dev=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && dev=/dev/\${p##*/}
done
echo "COFFER-GUEST agent port: \${dev:-none}" > /dev/ttyS0
[ -n "$dev" ] && qemu-ga -m virtio-serial -p "$dev" -t /tmp -f /tmp/qga.pid > /dev/ttyS0 2>&1 &
if ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up 2>/dev/null; then
  (while true; do echo ${GUEST_TCP_REPLY} | nc -l -p ${GUEST_TCP_PORT}; done) &
  echo "${GUEST_NET_LINE}" > /dev/ttyS0
fi
echo ${MARKER} > /dev/ttyS0
while true; do sleep 3600; done
`;

/**
 * A small BIOS-bootable disk image, built without mounting anything (no loop devices): an MBR (syslinux's mbr.bin)
 * with one active FAT partition at 1 MiB; the FAT made in a separate file (mkfs.fat -h 2048: its hidden sectors say
 * where it starts), syslinux installed into it by the mtools installer, Debian's kernel and a busybox initramfs
 * copied with mcopy, then the FAT written into the disk at its offset. The plain initramfs's /init prints MARKER on
 * the serial port and powers off; `agent: true` builds the agent image instead (AGENT_INIT: qemu-ga and its shared
 * libraries, the kernel modules, gzip-compressed). `kernel: false` leaves the kernel out (syslinux then waits at its
 * prompt).
 */
export function makeBootImage(dir: string, name: string, o: { kernel: boolean; agent?: boolean }): string {
  const work = join(dir, `${name}.build`);
  const root = join(work, 'root');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  if (o.agent) {
    mkdirSync(join(root, 'usr/sbin'), { recursive: true });
    mkdirSync(join(root, 'lib/modules'), { recursive: true });
    copyFileSync(QEMU_GA, join(root, 'usr/sbin/qemu-ga'));
    for (const lib of sharedLibraries(QEMU_GA)) {
      mkdirSync(join(root, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(root, lib));
    }
    const order = readFileSync(join(KERNEL_MODULES, 'ORDER'), 'utf8').split('\n').filter(Boolean);
    for (const m of [...order, 'ORDER']) copyFileSync(join(KERNEL_MODULES, m), join(root, 'lib/modules', m));
  }
  writeFileSync(
    join(root, 'init'),
    o.agent
      ? AGENT_INIT
      : '#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n' +
          `/bin/busybox echo ${MARKER} > /dev/ttyS0\n/bin/busybox poweroff -f\n`,
  );
  chmodSync(join(root, 'init'), 0o755);
  const list = run('find', ['.'], { cwd: root }).toString();
  const cpio = run('cpio', ['-o', '-H', 'newc', '--quiet', '-R', '0:0'], { input: list, cwd: root });
  writeFileSync(join(work, 'initrd.img'), o.agent ? gzipSync(cpio, { level: 6 }) : cpio);
  writeFileSync(
    join(work, 'syslinux.cfg'),
    'SERIAL 0 115200\nPROMPT 0\nTIMEOUT 1\nDEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.img\n' +
      '  APPEND console=ttyS0 quiet panic=-1\n',
  );
  const fat = join(work, 'fat.img');
  const fatBytes = 20 * 2 ** 20;
  closeSync(openSync(fat, 'w'));
  run('truncate', ['-s', String(fatBytes), fat]);
  run('mkfs.fat', ['-h', '2048', '-n', 'COFFERBOOT', fat]);
  run('syslinux', ['--install', fat]);
  if (o.kernel) run('mcopy', ['-i', fat, KERNEL, '::vmlinuz']);
  run('mcopy', ['-i', fat, join(work, 'initrd.img'), '::initrd.img']);
  run('mcopy', ['-i', fat, join(work, 'syslinux.cfg'), '::syslinux.cfg']);
  const disk = join(dir, `${name}.raw`);
  closeSync(openSync(disk, 'w'));
  run('truncate', ['-s', String(fatBytes + 2 * 2 ** 20), disk]);
  run('sfdisk', ['-q', disk], { input: 'start=2048, type=c, bootable\n' });
  run('dd', [`if=${MBR_BIN}`, `of=${disk}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);
  run('dd', [`if=${fat}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  return disk;
}
