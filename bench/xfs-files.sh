#!/usr/bin/env bash
# xfs-files.sh [WORKDIR=/tmp/coffer-bench-xfs]: file-level restore on XFS (as root: a loop mount populates the image).
# An XFS disk with a directory of 10,000 files and a 1 GiB file of incompressible data is backed up (1 MiB chunks);
# then the time and chunks fetched to `coffer files ls` the directory and to `coffer files get` the 1 GiB file.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${1:-/tmp/coffer-bench-xfs}
export COFFER_PASSWORD=coffer-bench-password
C="node $ROOT/dist/bundle/coffer.js"
rm -rf "$W"; mkdir -p "$W/mnt"
truncate -s 1536M "$W/xfs.raw"
mkfs.xfs -q -f "$W/xfs.raw"
mount -o loop "$W/xfs.raw" "$W/mnt"
trap 'umount "$W/mnt" 2>/dev/null || true' EXIT
mkdir "$W/mnt/dir10k"
(cd "$W/mnt/dir10k" && seq -f 'file-%05g.txt' 1 10000 | xargs touch)
head -c 1073741824 /dev/urandom > "$W/mnt/big.bin"
sha=$(sha256sum "$W/mnt/big.bin" | cut -d' ' -f1)
umount "$W/mnt"; trap - EXIT
$C init --repo "$W/repo" --chunk-size 1M -q
$C backup --repo "$W/repo" --vm bench "$W/xfs.raw" -q --no-progress
t() { node -e "console.log(((Date.now() - $1) / 1000).toFixed(2))"; }
sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
s=$(node -e 'console.log(Date.now())')
$C files ls --repo "$W/repo" latest --disk 0 /dir10k --json --no-progress > "$W/ls.json"
ls_s=$(t "$s")
ls_chunks=$(node -e "const r=JSON.parse(require('fs').readFileSync('$W/ls.json'));console.log(r.entries.length+' entries, '+r.chunksRead+' of '+r.chunksTotal+' chunks')")
sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
s=$(node -e 'console.log(Date.now())')
$C files get --repo "$W/repo" latest --disk 0 /big.bin --target "$W/out" --json --no-progress > "$W/get.json"
get_s=$(t "$s")
get_chunks=$(node -e "const r=JSON.parse(require('fs').readFileSync('$W/get.json'));console.log(r.bytes+' bytes, '+r.chunksRead+' of '+r.chunksTotal+' chunks')")
[ "$(sha256sum "$W/out/big.bin" | cut -d' ' -f1)" = "$sha" ] || { echo "big.bin differs" >&2; exit 1; }
echo "xfs files ls /dir10k: ${ls_s}s, $ls_chunks"
echo "xfs files get /big.bin (1 GiB): ${get_s}s, $get_chunks"
