#!/usr/bin/env bash
# make-guest-disk.sh OUT.raw [SIZE_GIB=4]
#
# Builds a guest-like raw VM disk image without mounting anything (no loop
# devices, no root-only kernel features beyond reading host files):
#   GPT, 1 MiB aligned
#   p1  256 MiB  EFI system partition, FAT32 (mformat), a few tens of MB of real files (mcopy)
#   p2  rest     Linux ext4 (mke2fs -d), filled to ~FILL_PERCENT % with real OS files
#   last 1 MiB   backup GPT
#
# Deterministic on a given host: fixed GUIDs/UUIDs/serials, fixed fake time, files
# selected from a byte-sorted (LC_ALL=C) list and cut off at a byte budget.
# (The content of course depends on the host's /usr; other hosts give other bytes.)
#
# Environment knobs:
#   FILL_PERCENT   ext4 fill target, percent of the ext4 partition (default 33)
#   ESP_MIB        content budget for the EFI partition in MiB (default 40)
#   SRC_DIRS       space-separated source dirs for ext4 content, in this order
#                  (default "/usr/bin /usr/sbin /usr/include /usr/share /usr/lib"; /etc is
#                  left out on purpose: it holds host secrets such as keys and shadow)
#   ESP_SRC        directory whose regular files (top level) fill the ESP
#                  (default: /boot if it has files, else /usr/lib/x86_64-linux-gnu)
#   SOURCE_DATE_EPOCH  fake "now" for mke2fs/mtools (default 1700000000)
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 OUT.raw [SIZE_GIB=4]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
OUT=$1
SIZE_GIB=${2:-4}
[[ $SIZE_GIB =~ ^[1-9][0-9]*$ ]] || { echo "SIZE_GIB must be a positive integer" >&2; exit 2; }
FILL_PERCENT=${FILL_PERCENT:-33}
ESP_MIB=${ESP_MIB:-40}
SRC_DIRS=${SRC_DIRS:-"/usr/bin /usr/sbin /usr/include /usr/share /usr/lib"}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH   # mke2fs: superblock/inode times
export MTOOLS_SKIP_CHECK=1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for t in sgdisk mformat mcopy mke2fs e2fsck debugfs dumpe2fs tar find sort truncate node; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (run scripts/setup.sh)" >&2; exit 1; }
done

MIB=$((1024 * 1024))
SECTOR=512
SIZE=$((SIZE_GIB * 1024 * MIB))
ESP_START=$((1 * MIB))                 # p1 starts at 1 MiB
ESP_SIZE=$((256 * MIB))
ROOT_START=$((ESP_START + ESP_SIZE))   # p2 starts at 257 MiB
ROOT_END=$((SIZE - MIB))               # leave the last MiB for the backup GPT
ROOT_SIZE=$((ROOT_END - ROOT_START))
[ "$ROOT_SIZE" -ge $((256 * MIB)) ] || { echo "disk too small" >&2; exit 2; }
BUDGET=$((ROOT_SIZE / 100 * FILL_PERCENT))
ESP_BUDGET=$((ESP_MIB * MIB))

# Fixed identifiers so that two runs produce the same bytes.
DISK_GUID=C0FFEE00-0000-4000-8000-000000000001
ESP_GUID=C0FFEE00-0000-4000-8000-000000000002
ROOT_GUID=C0FFEE00-0000-4000-8000-000000000003
FS_UUID=c0ffee00-0000-4000-8000-0000000000e4
HASH_SEED=c0ffee00-0000-4000-8000-0000000000a5
FAT_SERIAL=C0FFEE01

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coffer-guest.XXXXXX")
PARTIAL="$OUT.partial.$$"
cleanup() { rm -rf "$WORK"; rm -f "$PARTIAL"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[make-guest-disk %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# pick_files BUDGET LISTOUT DIR...: sorted, NUL-separated list of regular files,
# symlinks and directories under DIRs (same filesystem only, sockets/devices/fifos
# skipped) truncated at the first regular file that would exceed BUDGET bytes.
# Prints the number of content bytes selected.
pick_files() {
  local budget=$1 out=$2; shift 2
  find "$@" -xdev \( -type f -o -type d -o -type l \) -printf '%y %s %p\0' 2>/dev/null \
    | sort -z -k3 \
    | awk -v RS='\0' -v ORS='\0' -v budget="$budget" -v sumfile="$WORK/sum" '
        { type = substr($0, 1, 1); rest = substr($0, 3); sp = index(rest, " ")
          size = substr(rest, 1, sp - 1) + 0; path = substr(rest, sp + 1)
          if (type == "f") { if (total + size > budget) exit; total += size }
          print path }
        END { printf "%d\n", total > sumfile }' > "$out"
  cat "$WORK/sum"
}

log "building ${SIZE_GIB} GiB image $OUT (ext4 budget $((BUDGET / MIB)) MiB, ESP budget $ESP_MIB MiB)"
t0=$SECONDS

# --- 1. stage ext4 content --------------------------------------------------
STAGE="$WORK/root"
mkdir -p "$STAGE"; chmod 0755 "$STAGE"
# shellcheck disable=SC2086  # SRC_DIRS is a word list on purpose
got=$(pick_files "$BUDGET" "$WORK/root.list" $SRC_DIRS)
log "staging $((got / MIB)) MiB of files from: $SRC_DIRS"
# tar keeps symlinks as symlinks (never follows them), keeps hard links, modes, owners, mtimes.
tar -C / --null --no-recursion --verbatim-files-from -T "$WORK/root.list" -cf - 2>"$WORK/tar.err" \
  | tar -C "$STAGE" -xpf - || { cat "$WORK/tar.err" >&2; exit 1; }

# --- 2. stage ESP content (top-level regular files, sorted; too-big ones skipped) --
ESP_STAGE="$WORK/esp"
if [ -z "${ESP_SRC:-}" ]; then
  if [ -n "$(find /boot -maxdepth 1 -type f -print -quit 2>/dev/null)" ]; then ESP_SRC=/boot
  else ESP_SRC=/usr/lib/x86_64-linux-gnu; fi
fi
mkdir -p "$ESP_STAGE/EFI/BOOT" "$ESP_STAGE/EFI/debian"
find "$ESP_SRC" -maxdepth 1 -type f -printf '%s %p\0' | sort -z -k2 \
  | awk -v RS='\0' -v ORS='\0' -v budget="$ESP_BUDGET" \
      '{ sp = index($0, " "); size = substr($0, 1, sp - 1) + 0
         if (total + size > budget) next; total += size; print substr($0, sp + 1) }' \
  | xargs -0 -r cp -p -t "$ESP_STAGE/EFI/debian/"
printf 'fs0:\\EFI\\debian\\grubx64.efi\n' > "$ESP_STAGE/startup.nsh"
touch -d "@$SOURCE_DATE_EPOCH" "$ESP_STAGE/startup.nsh"
log "ESP: $(du -sm "$ESP_STAGE" | cut -f1) MiB from $ESP_SRC"

# --- 3. partition table -------------------------------------------------------
truncate -s "$SIZE" "$PARTIAL"
sgdisk -U "$DISK_GUID" \
  -n "1:$((ESP_START / SECTOR)):$((ROOT_START / SECTOR - 1))" -t 1:ef00 -c 1:"EFI System Partition" -u "1:$ESP_GUID" \
  -n "2:$((ROOT_START / SECTOR)):$((ROOT_END / SECTOR - 1))" -t 2:8300 -c 2:"Linux root" -u "2:$ROOT_GUID" \
  "$PARTIAL" >/dev/null 2>&1 || { echo "sgdisk failed" >&2; exit 1; }
sgdisk -v "$PARTIAL" | grep -q 'No problems found' || { echo "GPT verify failed" >&2; exit 1; }

# --- 4. FAT32 ESP -------------------------------------------------------------
mformat -i "$PARTIAL@@$ESP_START" -F -T $((ESP_SIZE / SECTOR)) -H $((ESP_START / SECTOR)) \
  -N "$FAT_SERIAL" -v EFI ::
mcopy -i "$PARTIAL@@$ESP_START" -s -m -Q "$ESP_STAGE"/* ::/
# mtools stamps directories with "now": pin those fields for reproducibility.
node "$HERE/fat-fix-times.mjs" "$PARTIAL" "$ESP_START" "$SOURCE_DATE_EPOCH"

# --- 5. ext4 root, written straight into the image at its partition offset -----
log "mke2fs -d ($(du -sm "$STAGE" | cut -f1) MiB staged)"
mke2fs -q -F -t ext4 -b 4096 -L guest-root -U "$FS_UUID" \
  -E "offset=$ROOT_START,hash_seed=$HASH_SEED,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
  -d "$STAGE" "$PARTIAL" "$((ROOT_SIZE / 1024))k"
# mke2fs -d copies atime/ctime from the staged copies (= "now"); pin them.
# (file mtimes stay the originals, crtime is already E2FSPROGS_FAKE_TIME.)
# Directory mtimes are not reproducible either (tar re-creates parents), so pin those too.
find "$STAGE" -printf '%y/%P\0' | awk -v RS='\0' -v t="@$SOURCE_DATE_EPOCH" '
  { type = substr($0, 1, 1); p = substr($0, 2)
    printf "sif \"%s\" atime %s\nsif \"%s\" ctime %s\n", p, t, p, t
    if (type == "d") printf "sif \"%s\" mtime %s\n", p, t }' > "$WORK/times.debugfs"
debugfs -w -f "$WORK/times.debugfs" "$PARTIAL?offset=$ROOT_START" 2>&1 >/dev/null \
  | grep -v '^debugfs [0-9]' > "$WORK/debugfs.err" || true
if [ -s "$WORK/debugfs.err" ]; then
  echo "warning: debugfs could not pin times on $(wc -l < "$WORK/debugfs.err") entries:" >&2
  head -n 5 "$WORK/debugfs.err" >&2
fi
# Read-only consistency check through e2fsprogs' "?offset=" io option.
e2fsck -fn "$PARTIAL?offset=$ROOT_START" >"$WORK/fsck.log" 2>&1 \
  || { cat "$WORK/fsck.log" >&2; echo "e2fsck found problems" >&2; exit 1; }

mv -f "$PARTIAL" "$OUT"
log "done in $((SECONDS - t0)) s"

# --- 6. report layout ---------------------------------------------------------
echo "== $OUT: $(stat -c %s "$OUT") bytes apparent, $(du -B1 "$OUT" | cut -f1) bytes allocated"
sgdisk -p "$OUT" | sed -n '/^Number/,$p'
echo "== p1 FAT32 @ $ESP_START"
minfo -i "$OUT@@$ESP_START" :: | grep -E 'big size|cluster size|serial|label' || true
mdir -i "$OUT@@$ESP_START" -/ :: | tail -n 3
echo "== p2 ext4 @ $ROOT_START"
dumpe2fs -h "$OUT?offset=$ROOT_START" 2>/dev/null \
  | grep -E '^(Filesystem volume name|Filesystem UUID|Block count|Free blocks|Block size|Inode count|Free inodes)' \
  | awk -F: '{ gsub(/^ +/, "", $2); print "  " $1 ": " $2 }'
grep -E 'files .*blocks' "$WORK/fsck.log" | sed 's/^/  /'
