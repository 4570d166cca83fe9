#!/usr/bin/env bash
# Installs the system packages Coffer's tests and benchmarks need. Idempotent; safe to run again.
# Debian/Ubuntu with apt, as root (or via sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(qemu-utils nbdkit libnbd-bin fdisk gdisk mtools dosfstools e2fsprogs restic borgbackup time openssl
  golang-go golang-github-vmware-govmomi-dev  # Go + govmomi sources: the vcsim launcher in test/fixtures/vcsim
  ntfs-3g wimtools  # NTFS test images (mkntfs, wimapply onto the image)
  xfsprogs lvm2)  # mkfs.xfs, xfs_db, xfs_io; pvcreate/vgcreate/vgcfgrestore: XFS and LVM2 test images
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# qemu-storage-daemon (a live-VM stand-in for dirty-bitmap tests) without the 129 recommended packages;
# chromium (headless, for the web console's end-to-end tests through playwright-core)
NORECS=(qemu-system-common chromium)
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
