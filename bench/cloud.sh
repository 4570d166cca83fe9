#!/usr/bin/env bash
# cloud.sh [WORKDIR=/tmp/coffer-cloud-bench]: backup to and restore from object storage.
#   coffer -> local directory, coffer -> Azurite (azure://), coffer -> s3rver (s3://, put=head),
#   restic -> s3rver (restic speaks S3; it has no Azurite/custom-endpoint Azure support: its azure backend
#   needs *.blob.core.windows.net or an endpoint suffix, which Azurite's path-style URLs do not fit).
# Per run: full backup, restore (cmp-verified): wall seconds, MB/s, HTTP requests (counted by a proxy) per GiB.
# Environment: SIZE_MIB (default 1024), TOOLS (default "coffer-local restic-local borg-local coffer-azure coffer-s3 restic-s3").
# restic-local and borg-local are the peers on a local directory (the baseline the object-storage rows are read against).
# The servers (bench/cloud-servers.mjs) run on 127.0.0.1 and are stopped by pid. Emulators on the same 2 cores as
# the client: these numbers compare layouts and tools, not Azure or AWS.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${1:-/tmp/coffer-cloud-bench}
SIZE_MIB=${SIZE_MIB:-1024}
TOOLS=${TOOLS:-"coffer-local restic-local borg-local coffer-azure coffer-s3 restic-s3"}
COFFER="node $ROOT/dist/bundle/coffer.js"
# restic 0.14 with s3rver: the default ListObjectsV2 answers do not parse; V1 listing works around it (if it does not, the row says failed)
RESTIC_OPTS=${RESTIC_OPTS:-"-o s3.list-objects-v1=true"}
export COFFER_PASSWORD=coffer-bench-password RESTIC_PASSWORD=coffer-bench-password
rm -rf "$WORK" && mkdir -p "$WORK"
IMG=$WORK/disk.raw
node -e "const fs=require('fs'),c=require('crypto');const fd=fs.openSync('$IMG','w');const M=1<<20;for(let i=0;i<$SIZE_MIB;i++){const b=i%4===3?Buffer.alloc(M):(i%4===2?Buffer.alloc(M,i&255):c.randomBytes(M));fs.writeSync(fd,b,0,M,i*M);}fs.closeSync(fd)"
node "$HERE/cloud-servers.mjs" "$WORK" &
for _ in $(seq 100); do [ -s "$WORK/servers.pid" ] && break; sleep 0.2; done
trap 'kill "$(cat "$WORK/servers.pid")" 2>/dev/null || true' EXIT
AZ=$(node -p "require('$WORK/servers.json').azurite"); S3=$(node -p "require('$WORK/servers.json').s3")
count() { curl -s "http://127.0.0.1:$1/__count"; }
export AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
echo "| tool | phase | seconds | MB/s | requests | requests/GiB |"
echo "| --- | --- | --- | --- | --- | --- |"
run() { # tool phase port cmd...
  local tool=$1 phase=$2 port=$3; shift 3
  local c0=0; [ "$port" != - ] && c0=$(count "$port")
  local t0; t0=$(date +%s.%N)
  if ! "$@" > "$WORK/$tool-$phase.log" 2>&1; then
    echo "| $tool | $phase | failed: $(tail -1 "$WORK/$tool-$phase.log" | cut -c1-80) | | | |"; return 1
  fi
  local t1; t1=$(date +%s.%N)
  local c1=0; [ "$port" != - ] && c1=$(count "$port")
  node -e "const s=$t1-$t0,r=$c1-$c0;console.log('| $tool | $phase | '+s.toFixed(2)+' | '+($SIZE_MIB*1.048576/s).toFixed(1)+' | '+('$port'==='-'?'-':r)+' | '+('$port'==='-'?'-':Math.round(r*1024/$SIZE_MIB))+' |')"
}
for tool in $TOOLS; do
  case $tool in
    coffer-local) R=$WORK/local-repo; P=- ;;
    coffer-azure) R="azure://devstoreaccount1/bench?endpoint=http%3A%2F%2F127.0.0.1%3A$AZ%2Fdevstoreaccount1"; P=$AZ ;;
    coffer-s3) R="s3://coffer-bench?endpoint=http%3A%2F%2F127.0.0.1%3A$S3&put=head"; P=$S3 ;;
    restic-s3) R="s3:http://127.0.0.1:$S3/restic"; P=$S3 ;;
    restic-local) R=$WORK/restic-repo; P=- ;;
    borg-local) R=$WORK/borg-repo; P=- ;;
  esac
  OUT=$WORK/restored-$tool
  if [[ $tool == borg-* ]]; then
    BORG_PASSPHRASE=$COFFER_PASSWORD borg init -e repokey-blake2 "$R" > /dev/null 2>&1
    run "$tool" backup "$P" env BORG_PASSPHRASE="$COFFER_PASSWORD" borg create --compression zstd,3 "$R::bench" "$IMG" || continue
    mkdir -p "$OUT"
    run "$tool" restore "$P" bash -c "cd '$OUT' && BORG_PASSPHRASE='$COFFER_PASSWORD' borg extract '$R::bench'" || continue
    cmp "$IMG" "$OUT$IMG"
  elif [[ $tool == restic-local ]]; then
    restic -r "$R" init -q > /dev/null
    run "$tool" backup "$P" restic -r "$R" backup -q "$IMG" || continue
    run "$tool" restore "$P" restic -r "$R" restore latest -q --target "$OUT" || continue
    cmp "$IMG" "$OUT$IMG"
  elif [[ $tool == restic-* ]]; then
    restic -r "$R" $RESTIC_OPTS init -q > /dev/null
    run "$tool" backup "$P" restic -r "$R" $RESTIC_OPTS backup -q "$IMG" || continue
    run "$tool" restore "$P" restic -r "$R" $RESTIC_OPTS restore latest -q --target "$OUT" || continue
    cmp "$IMG" "$OUT$IMG"
  else
    $COFFER init --repo "$R" > /dev/null
    run "$tool" backup "$P" $COFFER backup --repo "$R" --vm bench "$IMG" -q --no-progress
    run "$tool" restore "$P" $COFFER restore --repo "$R" latest --disk 0 --target "$OUT" -q --no-progress
    cmp "$IMG" "$OUT"
  fi
done
