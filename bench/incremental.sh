#!/usr/bin/env bash
# incremental.sh [WORKDIR=/tmp/coffer-bench-incr]
#
# Issue "block sources" benchmarks, in one run on the same data:
#  1. The 4 GiB guest disk (bench/make-guest-disk.sh) as qcow2 with a persistent dirty bitmap. Coffer backs it up in
#     full, then the same 2% change (bench/mutate-disk.mjs regions, identical bytes) is written into the qcow2 through
#     qemu-io (which marks the bitmap) and into a raw copy; then Coffer's incremental (nbd/qcow2 + bitmap) against
#     restic's repeat backup of the raw copy (restic re-reads everything; it has no change tracking).
#  2. A 100 GiB sparse disk served by nbdkit sparse-random (5% data): Coffer's full backup, peak RSS and throughput.
# Page caches are dropped before each measured phase when possible. Results: markdown on stdout.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORKDIR=${1:-/tmp/coffer-bench-incr}
COFFER="node $ROOT/dist/bundle/coffer.js"
SPARSE_GIB=${SPARSE_GIB:-100}
CHUNK_SIZE=${CHUNK_SIZE:-1M}   # the repository chunk size (coffer init --chunk-size; 1M is the default)
SKIP_SPARSE=${SKIP_SPARSE:-0}
export COFFER_PASSWORD=coffer-bench-password RESTIC_PASSWORD=coffer-bench-password
mkdir -p "$WORKDIR"; WORKDIR=$(cd "$WORKDIR" && pwd)
rm -rf "$WORKDIR/run"; mkdir -p "$WORKDIR/run" "$WORKDIR/regions"
RUN=$WORKDIR/run
IMAGE=$WORKDIR/guest-4g.raw
[ -f "$IMAGE" ] || bash "$HERE/make-guest-disk.sh" "$IMAGE" 4 >&2
drop() { sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true; }
measure() { # name cmd... -> prints "wall user sys rss_kib" into $RUN/$name.time, stdout into $RUN/$name.out
  local name=$1; shift; drop
  /usr/bin/time -f '%e %U %S %M' -o "$RUN/$name.time" "$@" > "$RUN/$name.out" 2> "$RUN/$name.err" || { echo "!!! $name failed:" >&2; cat "$RUN/$name.err" >&2; exit 1; }
}
field() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(j[process.argv[2]])' "$1" "$2"; }

# ---- 1. qcow2 + dirty bitmap vs restic
cp --sparse=always "$IMAGE" "$RUN/disk.raw"
qemu-img convert -f raw -O qcow2 "$RUN/disk.raw" "$RUN/disk.qcow2"
$COFFER init --repo "$RUN/coffer" --chunk-size "$CHUNK_SIZE" -q
restic init -r "$RUN/restic" -q >/dev/null
measure coffer-full $COFFER backup --repo "$RUN/coffer" --vm bench "file://$RUN/disk.qcow2" --json --no-progress
measure restic-full restic -r "$RUN/restic" backup "$RUN/disk.raw" -q
qemu-img bitmap --add "$RUN/disk.qcow2" b0
node "$HERE/mutate-disk.mjs" "$RUN/disk.raw" --percent 2 --seed 42 > "$RUN/mutation.json"
node "$HERE/mutate-disk.mjs" "$RUN/disk.raw" --percent 2 --seed 42 --list-only > "$RUN/regions.json"
cmds=()
while read -r off len; do
  f="$WORKDIR/regions/$off"
  dd if="$RUN/disk.raw" of="$f" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
  cmds+=(-c "write -q -s $f $off $len")
done < <(node -e 'for (const [o,l] of JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"))) console.log(o, l)' "$RUN/regions.json")
qemu-io -f qcow2 "${cmds[@]}" "$RUN/disk.qcow2" >/dev/null
changed=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).bytesWritten)' "$RUN/mutation.json")
measure coffer-incr $COFFER backup --repo "$RUN/coffer" --vm bench "file://$RUN/disk.qcow2?bitmap=b0" --json --no-progress
measure restic-repeat restic -r "$RUN/restic" backup "$RUN/disk.raw" -q
# the incremental restore point must equal the mutated raw image
$COFFER restore --repo "$RUN/coffer" latest --disk 0 --target "$RUN/restored.raw" -q --no-progress
cmp "$RUN/restored.raw" "$RUN/disk.raw" || { echo '!!! incremental restore differs from the source' >&2; exit 1; }
rm -f "$RUN/restored.raw"

# ---- 2. 100 GiB sparse disk over NBD
if [ "$SKIP_SPARSE" = 1 ]; then echo '{"bytesRead":0}' > "$RUN/coffer-sparse.out"; echo "0.01 0 0 0" > "$RUN/coffer-sparse.time"; else
port=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
nbdkit --ipv4-only -i 127.0.0.1 -p "$port" -P "$RUN/nbdkit.pid" sparse-random size=${SPARSE_GIB}G seed=42 percent=5 runlength=1048576
trap 'kill "$(cat "$RUN/nbdkit.pid")" 2>/dev/null || true' EXIT
$COFFER init --repo "$RUN/coffer-sparse" --chunk-size "$CHUNK_SIZE" -q
measure coffer-sparse $COFFER backup --repo "$RUN/coffer-sparse" --vm sparse "nbd://127.0.0.1:$port/" --json --no-progress
kill "$(cat "$RUN/nbdkit.pid")"; trap - EXIT
fi

t() { cut -d' ' -f"$2" "$RUN/$1.time"; }
rss() { echo $(( $(t "$1" 4) / 1024 )); }
incr_read=$(field "$RUN/coffer-incr.out" bytesRead); incr_mode=$(field "$RUN/coffer-incr.out" mode)
sp_read=$(field "$RUN/coffer-sparse.out" bytesRead)
cat <<MD
## Change tracking (qcow2 + dirty bitmap) and a 100 GiB sparse disk

- run: $(date -u +%FT%TZ); host: $(nproc) CPUs; $(restic version | cut -d' ' -f1-2); coffer $(node -p "require('$ROOT/package.json').version")
- chunk size: $CHUNK_SIZE
- change: $(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(j.regions+" x 1 MiB regions, "+j.bytesWritten+" bytes")' "$RUN/mutation.json"), the same bytes in the qcow2 (qemu-io) and the raw copy

| tool | phase | wall s | user s | sys s | max RSS MiB | bytes read |
|---|---|---:|---:|---:|---:|---:|
| coffer | full (qcow2 via qemu-nbd) | $(t coffer-full 1) | $(t coffer-full 2) | $(t coffer-full 3) | $(rss coffer-full) | $(field "$RUN/coffer-full.out" bytesRead) |
| restic | full (raw) | $(t restic-full 1) | $(t restic-full 2) | $(t restic-full 3) | $(rss restic-full) | |
| coffer | incremental ($incr_mode, bitmap b0) | $(t coffer-incr 1) | $(t coffer-incr 2) | $(t coffer-incr 3) | $(rss coffer-incr) | $incr_read |
| restic | repeat (raw, re-reads all) | $(t restic-repeat 1) | $(t restic-repeat 2) | $(t restic-repeat 3) | $(rss restic-repeat) | 4294967296 |
| coffer | full, ${SPARSE_GIB} GiB sparse-random 5% over NBD | $(t coffer-sparse 1) | $(t coffer-sparse 2) | $(t coffer-sparse 3) | $(rss coffer-sparse) | $sp_read |

- incremental / restic repeat wall: $(node -e "console.log(($(t coffer-incr 1)/$(t restic-repeat 1)).toFixed(3))") (target <= 0.1)
- incremental bytes read / bytes changed: $(node -e "console.log(($incr_read/$changed).toFixed(2))") (target <= 3)
- sparse full: $(node -e "console.log(($sp_read/1048576/$(t coffer-sparse 1)).toFixed(0))") MiB/s of allocated data read, $(node -e "console.log((${SPARSE_GIB}*1024/$(t coffer-sparse 1)).toFixed(0))") MiB/s of disk size, peak RSS $(rss coffer-sparse) MiB (target <= 256)
MD
