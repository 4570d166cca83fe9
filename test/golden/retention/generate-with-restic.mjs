#!/usr/bin/env node
// Computes the expected outputs of the retention golden files with restic (an independent implementation of the
// same keep-last/hourly/daily/weekly/monthly/yearly semantics), so the golden files do not come from the code
// under test. Usage: node generate-with-restic.mjs INPUT.json... (rewrites each file's `cases[].expected`).
// Needs restic (apt install restic; 0.14.0 was used). Runs with TZ=UTC: Coffer's buckets are UTC.
// Points protected by a hold or lock are kept in addition (restic has no holds): reasons 'hold' / 'locked'.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = { ...process.env, TZ: 'UTC', RESTIC_PASSWORD: 'golden' };
const restic = (args) => execFileSync('restic', args, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
const REASON = { 'last snapshot': 'last', 'hourly snapshot': 'hourly', 'daily snapshot': 'daily', 'weekly snapshot': 'weekly', 'monthly snapshot': 'monthly', 'yearly snapshot': 'yearly' };
const FLAG = { last: '--keep-last', hourly: '--keep-hourly', daily: '--keep-daily', weekly: '--keep-weekly', monthly: '--keep-monthly', yearly: '--keep-yearly' };

function isProtected(p, now) {
  const out = [];
  if (p.holds?.some((h) => h.until === undefined || Date.parse(h.until) > now)) out.push('hold');
  if (p.lock && (p.lock.legalHold || (p.lock.lockedUntil && Date.parse(p.lock.lockedUntil) > now))) out.push('locked');
  return out;
}

for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'golden-restic-'));
  try {
    const repo = join(dir, 'repo');
    restic(['init', '-r', repo, '-q']);
    writeFileSync(join(dir, 'f'), 'x');
    const byKey = new Map();
    for (const p of doc.points) {
      const t = p.time.replace('T', ' ').replace(/(\.\d+)?Z$/, '');
      const out = restic(['-r', repo, 'backup', join(dir, 'f'), '--host', p.vm, '--time', t, '--json', '-q']);
      const id = JSON.parse(out.trim().split('\n').at(-1)).snapshot_id;
      byKey.set(id.slice(0, 8), p);
    }
    for (const c of doc.cases) {
      const args = ['-r', repo, 'forget', '--dry-run', '--json', '--group-by', 'host'];
      for (const [rule, n] of Object.entries(c.policy)) args.push(FLAG[rule], String(n));
      const groups = JSON.parse(restic(args));
      const reasons = new Map();
      for (const g of groups) for (const r of g.reasons ?? []) {
        const snap = (g.keep ?? []).find((k) => k.time === r.snapshot.time && k.hostname === r.snapshot.hostname);
        reasons.set(snap.short_id, r.matches.map((m) => REASON[m] ?? m));
      }
      const now = Date.parse(doc.now);
      const keep = [];
      const remove = [];
      for (const [short, p] of byKey) {
        const rs = [...(reasons.get(short) ?? []), ...isProtected(p, now)];
        if (rs.length) keep.push({ id: p.id, reasons: rs });
        else remove.push(p.id);
      }
      c.expected = { keep: keep.sort((a, b) => a.id.localeCompare(b.id)), remove: remove.sort() };
    }
    doc.generatedBy = `restic ${restic(['version']).split(' ')[1]} (generate-with-restic.mjs), TZ=UTC`;
    writeFileSync(file, JSON.stringify(doc, null, 1) + '\n');
    console.log(`${file}: ${doc.cases.length} cases`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
