#!/usr/bin/env bash
# ntfs-files.sh [WORKDIR=/tmp/coffer-bench-ntfs] [BIG_MIB=1024]: file-level restore on NTFS. An NTFS volume made by
# mkntfs, a directory of 10,000 files applied by wimapply and a BIG_MIB file copied in by ntfscp, backed up; then the
# time and chunks fetched for `coffer files ls` of the directory and `coffer files get` of the big file.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
W=${1:-/tmp/coffer-bench-ntfs}
BIG=${2:-1024}
export COFFER_PASSWORD=coffer-bench-password
C="node $ROOT/dist/bundle/coffer.js"
rm -rf "$W"; mkdir -p "$W/src/dir10k"
for i in $(seq 1 10000); do echo "file $i" > "$W/src/dir10k/file-$i.txt"; done
wimcapture "$W/src" "$W/t.wim" --compress=none --no-acls >/dev/null
truncate -s $((BIG + 256))M "$W/vol.raw"
mkntfs -F -Q -s 512 -c 4096 "$W/vol.raw" >/dev/null 2>&1
wimapply "$W/t.wim" "$W/vol.raw" --no-acls >/dev/null
head -c "$((BIG * 1048576))" /dev/urandom > "$W/big.bin"
ntfscp "$W/vol.raw" "$W/big.bin" /big.bin
$C init --repo "$W/repo" -q
$C backup --repo "$W/repo" --vm bench "$W/vol.raw" -q --no-progress
t() { local s; s=$(date +%s.%N); "$@" > "$W/out.json"; node -e "console.log(($(date +%s.%N) - $s).toFixed(2))"; }
ls_s=$(t $C files ls --repo "$W/repo" latest --disk 0 /dir10k --json --no-progress)
ls_chunks=$(node -e "const r=require('$W/out.json'); console.log(r.chunksRead + ' of ' + r.chunksTotal + ', ' + r.entries.length + ' entries')")
get_s=$(t $C files get --repo "$W/repo" latest --disk 0 /big.bin --target "$W/out" --json --no-progress)
get_chunks=$(node -e "const r=require('$W/out.json'); console.log(r.chunksRead + ' of ' + r.chunksTotal)")
cmp "$W/out/big.bin" "$W/big.bin"
echo "| measurement (NTFS, 4 KiB clusters) | time (s) | chunks fetched |"
echo "|---|---:|---:|"
echo "| files ls of a directory of 10,000 files | $ls_s | $ls_chunks |"
echo "| files get of a $BIG MiB file | $get_s ($(node -e "console.log(($BIG/$get_s).toFixed(0))") MiB/s) | $get_chunks |"
rm -rf "$W"
