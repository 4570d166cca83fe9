#!/usr/bin/env bash
# Installs the system packages Coffer's tests and benchmarks need. Idempotent; safe to run again.
# Debian/Ubuntu with apt, as root (or via sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(qemu-utils nbdkit libnbd-bin fdisk gdisk mtools dosfstools e2fsprogs restic borgbackup time)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: system packages present"
fi
