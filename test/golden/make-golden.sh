#!/usr/bin/env bash
# Writes test/golden/repo-v1: a repository in format version 1, kept forever so that every later Coffer is tested
# on reading it (test/golden-repo.test.ts). Run only when adding a new format version's golden repository.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=test/golden/repo-v1
[ -e "$out" ] && { echo "$out exists; golden files are never regenerated" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node -e '
const fs=require("fs"),c=require("crypto");
const prng=(s,n)=>{const b=Buffer.alloc(n);for(let o=0,i=0;o<n;o+=32,i++)c.createHash("sha256").update(s+":"+i).digest().copy(b,o,0,Math.min(32,n-o));return b;};
const d0=Buffer.alloc(1048576+12345); prng("golden-0",262144).copy(d0,0); Buffer.from("coffer golden text ".repeat(20000)).copy(d0,393216,0,262144); prng("golden-0b",100000).copy(d0,d0.length-100000);
const d1=Buffer.alloc(300000); prng("golden-1",65536).copy(d1,65536);
fs.writeFileSync(process.argv[1]+"/disk0.raw",d0); fs.writeFileSync(process.argv[1]+"/disk1.raw",d1);
d0.fill(7, 700000, 700000+70000); fs.writeFileSync(process.argv[1]+"/disk0-v2.raw",d0);
' "$tmp"
export COFFER_PASSWORD='golden password'
node dist/bundle/coffer.js init --repo "$out" --chunk-size 64K -q
node dist/bundle/coffer.js backup --repo "$out" --vm golden-vm "$tmp/disk0.raw" "$tmp/disk1.raw" --tag golden -q --no-progress
node dist/bundle/coffer.js backup --repo "$out" --vm golden-vm "$tmp/disk0-v2.raw" "$tmp/disk1.raw" -q --no-progress
node dist/bundle/coffer.js list --repo "$out" --json > "$tmp/list.json"
node -e '
const fs=require("fs"),c=require("crypto"),t=process.argv[1];
const sha=f=>c.createHash("sha256").update(fs.readFileSync(t+"/"+f)).digest("hex");
const points=JSON.parse(fs.readFileSync(t+"/list.json","utf8"));
fs.writeFileSync("test/golden/repo-v1.json", JSON.stringify({password:"golden password", points: points.map((p,i)=>({id:p.id, vm:p.vm, parent:p.parent, disks:[{sizeBytes:p.disks[0].sizeBytes, sha256: sha(i===0?"disk0.raw":"disk0-v2.raw")},{sizeBytes:p.disks[1].sizeBytes, sha256: sha("disk1.raw")}]}))}, null, 2)+"\n");
' "$tmp"
chmod -R u+w "$out"
echo "wrote $out and test/golden/repo-v1.json"
