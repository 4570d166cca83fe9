#!/usr/bin/env bash
# mount.sh [WORKDIR=/tmp/coffer-bench]: instant recovery numbers on the 4 GiB guest disk backed up by compare.sh
# (or a fresh backup): time from `coffer mount` start to a ready export, sequential read of the whole export with
# nbdcopy (4 connections) and with one connection, page caches dropped first. Peer: restic's FUSE mount of the same
# image (`restic mount`, cat of the file), when FUSE is available.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORKDIR=${1:-/tmp/coffer-bench}
export COFFER_PASSWORD=coffer-bench-password RESTIC_PASSWORD=coffer-bench-password
IMAGE=$WORKDIR/guest-4g.raw
[ -f "$IMAGE" ] || bash "$HERE/make-guest-disk.sh" "$IMAGE" 4 >&2
M=$WORKDIR/mount; rm -rf "$M"; mkdir -p "$M"
node "$ROOT/dist/bundle/coffer.js" init --repo "$M/repo" -q
node "$ROOT/dist/bundle/coffer.js" backup --repo "$M/repo" --vm bench "$IMAGE" -q --no-progress
drop() { sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true; }
port=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
drop
start=$(date +%s.%N)
node "$ROOT/dist/bundle/coffer.js" mount --repo "$M/repo" latest --disk 0 --nbd "127.0.0.1:$port" --json > "$M/ready.json" 2> "$M/mount.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until [ -s "$M/ready.json" ]; do sleep 0.01; kill -0 $pid 2>/dev/null || { cat "$M/mount.err"; exit 1; }; done
ready=$(node -e "console.log(($(date +%s.%N) - $start).toFixed(3))")
t0=$(date +%s.%N); nbdcopy --connections=4 "nbd://127.0.0.1:$port/" null:; t4=$(node -e "console.log(($(date +%s.%N) - $t0).toFixed(2))")
kill -INT $pid; wait $pid || true
drop
node "$ROOT/dist/bundle/coffer.js" mount --repo "$M/repo" latest --disk 0 --nbd "127.0.0.1:$port" --json > "$M/ready2.json" 2>>"$M/mount.err" &
pid=$!
until [ -s "$M/ready2.json" ]; do sleep 0.01; done
t0=$(date +%s.%N); nbdcopy --connections=1 --requests=16 "nbd://127.0.0.1:$port/" null:; t1=$(node -e "console.log(($(date +%s.%N) - $t0).toFixed(2))")
kill -INT $pid; wait $pid || true; trap - EXIT
size=$(stat -c %s "$IMAGE")
echo "| measurement | value |"
echo "|---|---:|"
echo "| mount start to ready export (s) | $ready |"
echo "| nbdcopy 4 connections, whole 4 GiB export (s) | $t4 ($(node -e "console.log(($size/1048576/$t4).toFixed(0))") MiB/s) |"
echo "| nbdcopy 1 connection (s) | $t1 ($(node -e "console.log(($size/1048576/$t1).toFixed(0))") MiB/s) |"
