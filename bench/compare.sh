#!/usr/bin/env bash
# compare.sh [WORKDIR=/tmp/coffer-bench]
#
# Backs up one guest disk image with Coffer and its peers (restic, borg) and
# measures, per tool, in this fixed order:
#   full     first backup of the image into a fresh repository
#   (mutate-disk.mjs then changes PERCENT % of the image once, for every tool)
#   repeat   second backup of the same, now mutated, image (same path)
#   restore  restore of the latest backup to a file, verified with cmp
# Each phase runs under /usr/bin/time (wall, user, sys, max RSS); repository
# size (du -sb) is taken after full and after repeat. Page caches are dropped
# before every phase when the kernel lets us (recorded in the output).
# Results: markdown on stdout, WORKDIR/results.json, raw logs in WORKDIR/logs.
#
# Environment:
#   TOOLS     tools to run, in this order (default "coffer restic borg")
#   SIZE_GIB  guest disk size (default 4); the image is cached as WORKDIR/guest-<N>g.raw
#   PERCENT   share of the disk to mutate between backups (default 2), SEED (default 42)
#   COFFER_JS Coffer CLI entry (default <repo>/dist/bundle/coffer.js, run with node)
#   COFFER_BASE_JS another Coffer build, run as the tool `coffer-base` (e.g. TOOLS="coffer-base coffer restic"), to
#             compare two versions of Coffer in one run (before/after a change)
#   DROP_CACHES=0 to not even try dropping caches
#   WARM_PAGES=1/0 (default: 1 when the kernel reports free pages to its hypervisor, see below)
#
# Free page reporting. In a VM whose balloon device reports free pages (virtio-balloon REPORTING; this build VM's
# Firecracker does, /sys/module/page_reporting), memory that stays free for a moment is handed back to the host, and
# the next write into it faults on the host for every page: writing 3 GiB into the page cache took 3.3 s of sys time
# after a pause and 0.39 s right after 3 GiB were freed (dd, session 9). Whichever phase runs after a pause pays that,
# whatever the tool, and a restore (GiBs of new page cache) pays most. With WARM_PAGES=1, every phase starts right
# after SIZE_GIB+1 GiB were written to /dev/shm and freed, so every tool finds memory the host still backs, as on a
# physical machine; the KiB the kernel reported to the host during each phase are recorded (meta: reclaim.TOOL.PHASE).
# Everything is local; nothing talks to the network.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORKDIR=${1:-/tmp/coffer-bench}
TOOLS=${TOOLS:-"coffer restic borg"}
SIZE_GIB=${SIZE_GIB:-4}
PERCENT=${PERCENT:-2}
SEED=${SEED:-42}
COFFER_JS=${COFFER_JS:-$ROOT/dist/bundle/coffer.js}
COFFER_BASE_JS=${COFFER_BASE_JS:-}
js_of() { if [ "$1" = coffer-base ]; then echo "$COFFER_BASE_JS"; else echo "$COFFER_JS"; fi; }
DROP_CACHES=${DROP_CACHES:-1}
REPORTED_KIB=/sys/module/page_reporting/parameters/reported_kib
if [ -r "$REPORTED_KIB" ]; then WARM_PAGES=${WARM_PAGES:-1}; else WARM_PAGES=${WARM_PAGES:-0}; fi
TIME=/usr/bin/time

# Throw-away credentials for throw-away local repositories.
export COFFER_PASSWORD=coffer-bench-password
export RESTIC_PASSWORD=$COFFER_PASSWORD
export BORG_PASSPHRASE=$COFFER_PASSWORD
export BORG_DISPLAY_PASSPHRASE=no
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

die() { echo "compare: $*" >&2; exit 1; }
log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- preflight -----------------------------------------------------------------
[ -x "$TIME" ] || die "$TIME missing (apt package 'time'; run scripts/setup.sh)"
for tool in $TOOLS; do
  case $tool in
    coffer) [ -f "$COFFER_JS" ] || die "Coffer CLI not built: $COFFER_JS (npm run build), or drop it from TOOLS" ;;
    coffer-base) [ -f "$COFFER_BASE_JS" ] || die "coffer-base needs COFFER_BASE_JS (another build's dist/bundle/coffer.js)" ;;
    restic) command -v restic >/dev/null || die "restic missing (scripts/setup.sh)" ;;
    borg)   command -v borg >/dev/null || die "borg missing (scripts/setup.sh)" ;;
    *) die "unknown tool '$tool' (known: coffer coffer-base restic borg)" ;;
  esac
done

mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
IMAGE=$WORKDIR/guest-${SIZE_GIB}g.raw     # pristine, cached between runs
RUN=$WORKDIR/run                           # everything below is recreated per run
DISK=$RUN/disk.raw                         # the image every tool backs up
LOGS=$WORKDIR/logs
STATE=$WORKDIR/state                       # tool caches (restic cache, borg base dir)
rm -rf "$RUN" "$LOGS" "$STATE" "$WORKDIR/repos" "$WORKDIR/restore" "$WORKDIR/results.json"
mkdir -p "$RUN" "$LOGS" "$STATE" "$WORKDIR/repos" "$WORKDIR/restore"
export RESTIC_CACHE_DIR=$STATE/restic-cache
export BORG_BASE_DIR=$STATE/borg

if [ ! -f "$IMAGE" ]; then
  log "building guest image $IMAGE (${SIZE_GIB} GiB)"
  gen_start=$SECONDS
  bash "$HERE/make-guest-disk.sh" "$IMAGE" "$SIZE_GIB" > "$LOGS/make-guest-disk.log"
  log "guest image built in $((SECONDS - gen_start)) s"
fi
log "working copy $DISK"
cp --sparse=always "$IMAGE" "$DISK"
sync

# ---- helpers --------------------------------------------------------------------
CACHES_DROPPED=unknown   # becomes yes (all drops worked) or no (any failed / disabled)
drop_caches() {
  sync
  if [ "$DROP_CACHES" = 1 ] && { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null; then
    [ "$CACHES_DROPPED" = no ] || CACHES_DROPPED=yes
  else
    CACHES_DROPPED=no
  fi
}

# warm_pages: fault in SIZE_GIB+1 GiB (tmpfs, no disk I/O) and free it, so the phase that follows at once gets pages
# the hypervisor has not taken back (see WARM_PAGES above)
WARM_FILE=/dev/shm/coffer-bench-warm.$$
trap 'rm -f "$WARM_FILE"' EXIT
warm_pages() {
  [ "$WARM_PAGES" = 1 ] || return 0
  # at most what /dev/shm can take, less 256 MiB (tmpfs defaults to half the RAM)
  local want=$(((SIZE_GIB + 1) * 1024)) avail
  avail=$(df --output=avail -B1M /dev/shm 2> /dev/null | tail -n 1 | tr -d ' ')
  [ -n "$avail" ] && [ "$avail" -gt 256 ] && [ "$want" -gt $((avail - 256)) ] && want=$((avail - 256))
  dd if=/dev/zero of="$WARM_FILE" bs=1M count="$want" status=none 2> /dev/null || log "warm-up: /dev/shm took less"
  rm -f "$WARM_FILE"
}
reported_kib() { cat "$REPORTED_KIB" 2> /dev/null || echo 0; }
RECLAIM=$LOGS/reclaim.tsv   # KiB reported to the host during each phase
: > "$RECLAIM"

RECORDS=$LOGS/records.tsv
printf 'tool\tphase\tstatus\twall_s\tuser_s\tsys_s\tmaxrss_kib\trepo_bytes\tverify\toutput\n' > "$RECORDS"
declare -A FAILED=()   # tool -> 1 once a phase failed; its later phases are skipped
FAILURES=0

repo_of() { echo "$WORKDIR/repos/$1"; }

# measure TOOL PHASE CMD...: run CMD under /usr/bin/time, stdout+stderr to logs.
# Sets M_STATUS (ok/failed) and M_TIMES ("wall user sys rss").
measure() {
  local tool=$1 phase=$2; shift 2
  local base=$LOGS/$tool-$phase rc=0
  drop_caches
  warm_pages
  log "$tool $phase: $*"
  local r0; r0=$(reported_kib)
  "$TIME" -f '%e %U %S %M' -o "$base.time" "$@" < /dev/null > "$base.out" 2> "$base.err" || rc=$?
  printf 'reclaim.%s.%s\t%s\n' "$tool" "$phase" $(($(reported_kib) - r0)) >> "$RECLAIM"
  M_TIMES=$(tail -n 1 "$base.time")
  if [ "$rc" = 0 ]; then
    M_STATUS=ok
    log "$tool $phase: done, wall/user/sys/rssKiB = $M_TIMES"
  else
    M_STATUS=failed
    FAILED[$tool]=1; FAILURES=$((FAILURES + 1))
    echo "!!! $tool $phase FAILED (exit $rc); last lines of $base.err:" >&2
    tail -n 15 "$base.err" >&2 || true
  fi
}

# record TOOL PHASE REPO_BYTES VERIFY
record() {
  local wall user sys rss
  read -r wall user sys rss <<< "$M_TIMES"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$M_STATUS" \
    "${wall:-}" "${user:-}" "${sys:-}" "${rss:-}" "$3" "$4" "$LOGS/$1-$2.out" >> "$RECORDS"
}

repo_bytes() { du -sb "$(repo_of "$1")" 2>/dev/null | cut -f1 || true; }

# ---- per-tool commands ------------------------------------------------------------
tool_init() {   # not timed
  local repo; repo=$(repo_of "$1")
  case $1 in
    coffer|coffer-base) node "$(js_of "$1")" init --repo "$repo" ;;
    restic) restic -r "$repo" init ;;
    borg)   borg init -e repokey-blake2 "$repo" ;;
  esac > "$LOGS/$1-init.out" 2> "$LOGS/$1-init.err" < /dev/null
}

tool_backup() {   # TOOL PHASE
  local repo; repo=$(repo_of "$1")
  case $1 in
    coffer|coffer-base) measure "$1" "$2" node "$(js_of "$1")" backup --repo "$repo" --vm bench "$DISK" --json ;;
    restic) measure "$1" "$2" restic -r "$repo" backup --host coffer-bench --json "$DISK" ;;
    borg)   measure "$1" "$2" borg create --compression zstd,3 --json "$repo::$2" "$DISK" ;;
  esac
}

# Restores the latest backup; prints the path of the restored image file.
tool_restore() {
  local repo target; repo=$(repo_of "$1"); target=$WORKDIR/restore/$1
  mkdir -p "$target"
  case $1 in
    coffer|coffer-base)
      local id
      id=$(node "$(js_of "$1")" list --repo "$repo" --json < /dev/null 2> "$LOGS/$1-restore.err" | node -e '
        let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
          const snaps = JSON.parse(s).slice().sort((a, b) => String(a.time).localeCompare(String(b.time)));
          if (!snaps.length) process.exit(1);
          console.log(snaps[snaps.length - 1].id);
        });') || { M_STATUS=failed; M_TIMES=""; FAILED[$1]=1; FAILURES=$((FAILURES + 1))
             echo "!!! coffer list failed (see $LOGS/coffer-restore.err)" >&2; return; }
      measure "$1" restore node "$(js_of "$1")" restore --repo "$repo" "$id" --disk 0 --target "$target/disk.raw"
      RESTORED=$target/disk.raw ;;
    restic)
      measure "$1" restore restic -r "$repo" restore latest --target "$target"
      RESTORED=$target$DISK ;;          # restic recreates the absolute path under --target
    borg)
      measure "$1" restore env -C "$target" borg extract "$repo::repeat"
      RESTORED=$target$DISK ;;          # borg extract recreates the path (minus leading /) in cwd
  esac
}

# ---- run ---------------------------------------------------------------------------
START_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)

for tool in $TOOLS; do
  if ! tool_init "$tool"; then
    echo "!!! $tool init failed:" >&2; tail -n 15 "$LOGS/$tool-init.err" >&2
    FAILED[$tool]=1; FAILURES=$((FAILURES + 1))
  fi
done

# Phase 1: full backups of the pristine image.
for tool in $TOOLS; do
  [ -z "${FAILED[$tool]:-}" ] || continue
  tool_backup "$tool" full
  record "$tool" full "$(repo_bytes "$tool")" ""
done

# Mutate the one working copy once, so every tool sees identical bytes next.
log "mutating $PERCENT % of $DISK (seed $SEED)"
node "$HERE/mutate-disk.mjs" "$DISK" --percent "$PERCENT" --seed "$SEED" \
  --list-out "$LOGS/mutation-list.json" > "$LOGS/mutation.json"
log "mutation: $(cat "$LOGS/mutation.json")"

# Phase 2: repeat backups of the mutated image.
for tool in $TOOLS; do
  [ -z "${FAILED[$tool]:-}" ] || continue
  tool_backup "$tool" repeat
  record "$tool" repeat "$(repo_bytes "$tool")" ""
done

# Phase 3: restore the latest backup, compare byte for byte, delete the copy.
for tool in $TOOLS; do
  [ -z "${FAILED[$tool]:-}" ] || continue
  RESTORED=""
  tool_restore "$tool"
  verify=n/a
  if [ "$M_STATUS" = ok ]; then
    if [ -f "$RESTORED" ] && cmp -s "$DISK" "$RESTORED"; then
      verify=ok
      log "$tool restore: verified, identical to the mutated image"
    else
      verify=MISMATCH; FAILURES=$((FAILURES + 1))
      {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! $tool RESTORE MISMATCH: $RESTORED differs from $DISK"
        if [ -f "$RESTORED" ]; then
          echo "!!! sizes: $(stat -c %s "$DISK") vs $(stat -c %s "$RESTORED"); first difference:"
          cmp "$DISK" "$RESTORED" 2>&1 | head -n 1 || true
        else
          echo "!!! restored file does not exist"
        fi
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
      } >&2
    fi
  fi
  record "$tool" restore "" "$verify"
  rm -rf "${WORKDIR:?}/restore/$tool"   # frees SIZE_GIB before the next tool restores
done

# ---- report ---------------------------------------------------------------------
{
  printf 'start\t%s\n' "$START_ISO"
  printf 'end\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'workdir\t%s\n' "$WORKDIR"
  printf 'tools\t%s\n' "$TOOLS"
  printf 'sizeGiB\t%s\n' "$SIZE_GIB"
  printf 'image\t%s\n' "$IMAGE"
  printf 'diskBytes\t%s\n' "$(stat -c %s "$DISK")"
  printf 'diskAllocatedBytes\t%s\n' "$(du -B1 "$IMAGE" | cut -f1)"
  printf 'cachesDropped\t%s\n' "$CACHES_DROPPED"
  printf 'warmPages\t%s\n' "$WARM_PAGES"
  printf 'freePageReporting\t%s\n' "$([ -r "$REPORTED_KIB" ] && echo yes || echo no)"
  cat "$RECLAIM"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'memTotalKiB\t%s\n' "$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
  printf 'node\t%s\n' "$(node --version)"
  for tool in $TOOLS; do
    case $tool in
      coffer|coffer-base) printf 'version.%s\t%s\n' "$tool" "$(node "$(js_of "$tool")" --version 2>/dev/null < /dev/null | head -n 1 || true)" ;;
      restic) printf 'version.restic\t%s\n' "$(restic version | head -n 1)" ;;
      borg)   printf 'version.borg\t%s\n' "$(borg --version)" ;;
    esac
  done
} > "$LOGS/meta.tsv"

node "$HERE/report.mjs" "$LOGS/meta.tsv" "$RECORDS" "$LOGS/mutation.json" "$WORKDIR/results.json"

if [ "$FAILURES" -gt 0 ]; then
  echo "!!! compare: $FAILURES failure(s) or mismatch(es) - see above and $LOGS" >&2
  exit 1
fi
