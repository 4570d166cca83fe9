#!/usr/bin/env bash
# ransomware-signals.sh [WORKDIR=/tmp/coffer-bench-ransomware]
#
# Issue 18: false-positive rate of the anomaly score on ordinary churn, detection rate on simulated attacks.
#  1. A 128 MiB ext4 guest (bench/ransomware-sim.mjs make: configs, logs, compressed packages, a database file), backed
#     up, then ROUNDS (default 100) rounds of ordinary churn (logs grow, a package update now and then, database pages
#     rewritten in place, config edits), each followed by a backup: every flagged point is a false positive.
#     Then MUTATE_ROUNDS (default 20) rounds of bench/mutate-disk.mjs (2% of the disk overwritten with incompressible
#     random regions every round: a worst case for an entropy detector).
#  2. From the repository and image after the churn, for each PERCENT in ATTACKS (share of files encrypted in place
#     with openssl aes-256-ctr, renamed to .locked, a ransom note per directory) and each SEED: a fresh copy, the
#     attack, a backup: every flagged point is a detection.
# Results: markdown on stdout; details in WORKDIR.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORKDIR=${1:-/tmp/coffer-bench-ransomware}
ROUNDS=${ROUNDS:-100}
MUTATE_ROUNDS=${MUTATE_ROUNDS:-20}
ATTACKS=${ATTACKS:-"2 5 10 25 50 100"}
SEEDS=${SEEDS:-"a b"}
COFFER="node $ROOT/dist/bundle/coffer.js"
SIM="node $HERE/ransomware-sim.mjs"
export COFFER_PASSWORD=coffer-bench-password
rm -rf "$WORKDIR"; mkdir -p "$WORKDIR"; WORKDIR=$(cd "$WORKDIR" && pwd)
IMG=$WORKDIR/guest.raw REPO=$WORKDIR/repo
field() { node -e 'const d=JSON.parse(require("fs").readFileSync(0,"utf8"));const s=d.signals;console.log([s.suspicious?1:0,s.score,JSON.stringify(s.reasons.join("; "))].join("\t"))'; }
backup() { $COFFER backup --repo "$1" --vm guest "$2" --json 2>/dev/null | field; }

$SIM "$IMG" make --seed bench --size-mib 128 >/dev/null
$COFFER init --repo "$REPO" --chunk-size 64K >/dev/null
backup "$REPO" "$IMG" >/dev/null
fp=0; max=0
for r in $(seq 1 "$ROUNDS"); do
  $SIM "$IMG" churn --seed "churn-$r" >/dev/null
  IFS=$'\t' read -r flagged score reasons < <(backup "$REPO" "$IMG")
  echo "churn $r $flagged $score $reasons" >> "$WORKDIR/churn.log"
  fp=$((fp + flagged)); [ "$score" -gt "$max" ] && max=$score
done
mfp=0; mmax=0
cp "$IMG" "$WORKDIR/mutated.raw"; cp -a "$REPO" "$WORKDIR/repo-mutate"
for r in $(seq 1 "$MUTATE_ROUNDS"); do
  node "$HERE/mutate-disk.mjs" "$WORKDIR/mutated.raw" --percent 2 --seed "m$r" --min-offset 0 >/dev/null
  IFS=$'\t' read -r flagged score reasons < <(backup "$WORKDIR/repo-mutate" "$WORKDIR/mutated.raw")
  echo "mutate $r $flagged $score $reasons" >> "$WORKDIR/churn.log"
  mfp=$((mfp + flagged)); [ "$score" -gt "$mmax" ] && mmax=$score
done
echo "## Ransomware signals (issue 18): \`bash bench/ransomware-signals.sh\`"
echo
echo "128 MiB ext4 guest, 64 KiB chunks, default thresholds (suspicious at score 50, history of 10 points)."
echo
echo "| workload | points | flagged | false-positive rate | highest score |"
echo "| --- | --- | --- | --- | --- |"
echo "| ordinary churn (ransomware-sim churn) | $ROUNDS | $fp | $(awk "BEGIN{printf \"%.1f%%\", 100*$fp/$ROUNDS}") | $max |"
echo "| 2% random incompressible regions a round (mutate-disk.mjs) | $MUTATE_ROUNDS | $mfp | $(awk "BEGIN{printf \"%.1f%%\", 100*$mfp/$MUTATE_ROUNDS}") | $mmax |"
echo
echo "| attack: files encrypted in place | attacks | detected | detection rate | scores | changed bytes |"
echo "| --- | --- | --- | --- | --- | --- |"
for p in $ATTACKS; do
  det=0; n=0; scores=""; bytes=""
  for s in $SEEDS; do
    rm -rf "$WORKDIR/a"; mkdir "$WORKDIR/a"; cp "$IMG" "$WORKDIR/a/img.raw"; cp -a "$REPO" "$WORKDIR/a/repo"
    changed=$($SIM "$WORKDIR/a/img.raw" attack --seed "$s" --percent "$p" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).changedBytes)')
    IFS=$'\t' read -r flagged score reasons < <(backup "$WORKDIR/a/repo" "$WORKDIR/a/img.raw")
    echo "attack $p% $s $flagged $score $reasons" >> "$WORKDIR/attack.log"
    n=$((n + 1)); det=$((det + flagged)); scores="$scores $score"; bytes="$bytes $((changed / 1048576))MiB"
  done
  echo "| $p% of the files | $n | $det | $(awk "BEGIN{printf \"%.0f%%\", 100*$det/$n}") |$scores |$bytes |"
done
rm -rf "$WORKDIR/a"
