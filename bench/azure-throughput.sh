#!/usr/bin/env bash
# azure-throughput.sh [WORKDIR=/tmp/coffer-azure-throughput]: the link to Azure, filled or not (issue 19).
# Azurite on 127.0.0.1 behind bench/latency-proxy.mjs (DELAYS, default "0 30" ms each way); for each delay, in the same
# run and on the same data (SIZE_MIB, default 1024, of incompressible data in 1 MiB pieces):
#   raw-upload / raw-download: the Azure SDK alone (bench/azure-raw.mjs: one block blob a MiB, RAW_IN_FLIGHT=16)
#   coffer backup / coffer restore of that file (default 1 MiB chunks), cmp-verified
# Prints one Markdown row each: seconds, MB/s, % of the raw rate, peak RSS (/usr/bin/time), user+sys CPU seconds, and
# the load average (the machine is shared: read the numbers with it). Servers are ours, stopped by pid.
# COFFER_BASE_JS=<another build's dist/bundle/coffer.js>: that build's backup and restore run too, as `coffer-base`,
# on the same data in the same run (which of the two goes first alternates with each delay), to compare two builds.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${1:-/tmp/coffer-azure-throughput}
SIZE_MIB=${SIZE_MIB:-1024}
DELAYS=${DELAYS:-"0 30"}
RAW_IN_FLIGHT=${RAW_IN_FLIGHT:-16}
COFFER_JS=${COFFER_JS:-$ROOT/dist/bundle/coffer.js}
COFFER_BASE_JS=${COFFER_BASE_JS:-}
export COFFER_PASSWORD=coffer-bench-password COFFER_CACHE_DIR=$WORK/cache
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
rm -rf "$WORK" && mkdir -p "$WORK/azurite"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done; }
trap cleanup EXIT
IMG=$WORK/disk.raw
node -e "const fs=require('fs'),c=require('crypto');const fd=fs.openSync('$IMG','w');const M=1<<20;for(let i=0;i<$SIZE_MIB;i++)fs.writeSync(fd,c.randomBytes(M),0,M,i*M);fs.closeSync(fd)"
AZ_PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
node "$ROOT/node_modules/azurite/dist/src/blob/main.js" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
  --location "$WORK/azurite" --skipApiVersionCheck --loose --disableTelemetry --silent > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<> "/dev/tcp/127.0.0.1/$AZ_PORT") 2> /dev/null && break; sleep 0.2; done

echo "| delay (ms each way) | what | seconds | MB/s | % of raw | peak RSS MiB | CPU s | load avg (1 min) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
row() { # delay what seconds rss raw_mbps
  node -e "const s=$3,m=$SIZE_MIB*1.048576/s,r=${5:-0};console.log('| $1 | $2 | '+s.toFixed(2)+' | '+m.toFixed(1)+' | '+(r?Math.round(100*m/r)+'%':'-')+' | $4 | $CPU | '+require('os').loadavg()[0].toFixed(2)+' |')"
}
timed() { # out-prefix cmd...: runs with /usr/bin/time, sets SECS, RSS and CPU
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o "$1.rss" "${@:2}" > "$1.log" 2>&1 || { echo "failed: $*" >&2; tail -5 "$1.log" >&2; return 1; }
  t1=$(date +%s.%N)
  SECS=$(node -p "$t1-$t0")
  read -r RSS CPU_U CPU_S <<< "$(tail -1 "$1.rss")"
  RSS=$((RSS / 1024))
  CPU=$(node -p "($CPU_U+$CPU_S).toFixed(2)")
}
builds() { # the builds to run at this delay, in this delay's order
  if [ -z "$COFFER_BASE_JS" ]; then echo coffer; elif [ $(($1 % 2)) = 0 ]; then echo coffer-base coffer; else echo coffer coffer-base; fi
}
js_of() { if [ "$1" = coffer-base ]; then echo "$COFFER_BASE_JS"; else echo "$COFFER_JS"; fi; }
n=0
for d in $DELAYS; do
  node "$HERE/latency-proxy.mjs" "$AZ_PORT" "$d" "$WORK/proxy-$d.pid" > "$WORK/proxy-$d.json" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/proxy-$d.json" ] && break; sleep 0.1; done
  PORT=$(node -p "require('$WORK/proxy-$d.json').port")
  EP=http://127.0.0.1:$PORT/$ACCOUNT
  export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$KEY;BlobEndpoint=$EP;"
  timed "$WORK/raw-up-$d" node "$HERE/azure-raw.mjs" upload "$IMG" "raw$d" "$RAW_IN_FLIGHT"
  RAW_UP=$(node -p "$SIZE_MIB*1.048576/$SECS")
  row "$d" "raw SDK upload ($RAW_IN_FLIGHT in flight)" "$SECS" "$RSS"
  timed "$WORK/raw-down-$d" node "$HERE/azure-raw.mjs" download "$IMG" "raw$d" "$RAW_IN_FLIGHT"
  RAW_DOWN=$(node -p "$SIZE_MIB*1.048576/$SECS")
  row "$d" "raw SDK download ($RAW_IN_FLIGHT in flight)" "$SECS" "$RSS"
  n=$((n + 1))
  for b in $(builds $n); do
    R="azure://$ACCOUNT/$b$d"
    node "$(js_of $b)" init --repo "$R" > /dev/null 2> "$WORK/$b-init-$d.err" \
      || { echo "init failed ($b):" >&2; cat "$WORK/$b-init-$d.err" >&2; exit 1; }
    timed "$WORK/$b-backup-$d" node "$(js_of $b)" backup --repo "$R" --vm bench "$IMG" -q --no-progress
    row "$d" "$b backup" "$SECS" "$RSS" "$RAW_UP"
  done
  for b in $(builds $n); do
    R="azure://$ACCOUNT/$b$d"
    timed "$WORK/$b-restore-$d" node "$(js_of $b)" restore --repo "$R" latest --disk 0 --target "$WORK/out-$d.raw" \
      -q --no-progress
    row "$d" "$b restore" "$SECS" "$RSS" "$RAW_DOWN"
    cmp "$IMG" "$WORK/out-$d.raw"
    rm -f "$WORK/out-$d.raw"
  done
done
echo
echo "$(nproc) cores; $SIZE_MIB MiB; Azurite and the proxy on the same cores as the client; $(date -u +%FT%TZ)"
