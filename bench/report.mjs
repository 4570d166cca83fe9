#!/usr/bin/env node
// report.mjs META.tsv RECORDS.tsv MUTATION.json OUT.json
// Turns compare.sh's raw records into WORKDIR/results.json and a markdown
// summary on stdout (tool x phase table, coffer/peer ratios).
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

const [metaPath, recordsPath, mutationPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: report.mjs META.tsv RECORDS.tsv MUTATION.json OUT.json');
  process.exit(2);
}

const readTsv = (p) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
const num = (s) => (s === undefined || s === '' ? null : Number(s));
const tryJson = (s) => {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
};

// ---- meta ---------------------------------------------------------------------
const meta = {};
const versions = {};
for (const [k, v] of readTsv(metaPath)) {
  if (k.startsWith('version.')) versions[k.slice(8)] = v || null;
  else if (k.startsWith('reclaim.')) (meta.reclaimKiB ??= {})[k.slice(8)] = Number(v);
  else meta[k] = /^(sizeGiB|diskBytes|diskAllocatedBytes|nproc|memTotalKiB)$/.test(k) ? Number(v) : v;
}
meta.cachesDropped = meta.cachesDropped === 'yes';
meta.versions = versions;
meta.mutation = existsSync(mutationPath) ? tryJson(readFileSync(mutationPath, 'utf8')) : null;

// ---- what each tool says it added to its repository -------------------------------
function reported(tool, phase, outFile) {
  if (phase === 'restore' || !existsSync(outFile)) return null;
  const text = readFileSync(outFile, 'utf8');
  if (tool === 'restic') {
    // --json: one message per line; the last one of type "summary" has the totals
    const summary = text
      .split('\n')
      .map(tryJson)
      .filter((m) => m && m.message_type === 'summary')
      .pop();
    return summary ? { newBytes: summary.data_added, raw: summary } : null;
  }
  const obj = tryJson(text.trim()) ?? tryJson(text.trim().split('\n').pop());
  if (!obj) return null;
  if (tool === 'borg') {
    // deduplicated_size: compressed bytes this archive added to the repository
    return { newBytes: obj.archive?.stats?.deduplicated_size ?? null, raw: obj.archive?.stats ?? obj };
  }
  if (tool === 'coffer' || tool === 'coffer-base') return { newBytes: obj.bytesStored ?? null, raw: obj };
  return { newBytes: null, raw: obj };
}

// ---- records ---------------------------------------------------------------------
const [header, ...rows] = readTsv(recordsPath);
const results = {};
for (const r of rows) {
  const rec = Object.fromEntries(header.map((h, i) => [h, r[i] ?? '']));
  // timings of a failed phase are kept in the record but never used for rates or ratios
  const ok = rec.status === 'ok' && rec.verify !== 'MISMATCH';
  const wall = num(rec.wall_s),
    user = num(rec.user_s),
    sys = num(rec.sys_s);
  const entry = {
    status: rec.status,
    wallS: wall,
    userS: user,
    sysS: sys,
    cpuS: user !== null && sys !== null ? Number((user + sys).toFixed(2)) : null,
    maxRssKiB: num(rec.maxrss_kib),
    mibPerS: ok && wall ? Number((meta.diskBytes / 1048576 / wall).toFixed(1)) : null,
  };
  Object.defineProperty(entry, 'ok', { value: ok, enumerable: false });
  if (rec.repo_bytes) entry.repoBytes = Number(rec.repo_bytes);
  if (rec.verify) entry.verify = rec.verify;
  const rep = reported(rec.tool, rec.phase, rec.output);
  if (rep) {
    entry.newBytesReported = rep.newBytes;
    entry.toolOutput = rep.raw;
  }
  (results[rec.tool] ??= {})[rec.phase] = entry;
}

// ---- ratios coffer / peer ---------------------------------------------------------------
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : Number((a / b).toFixed(3)));
const ratios = {};
for (const variant of ['coffer-base', 'coffer']) {
  const c = results[variant];
  for (const peer of ['restic', 'borg']) {
    const p = results[peer];
    if (!c || !p) continue;
    const r = {};
    for (const phase of ['full', 'repeat', 'restore']) {
      if (!c[phase]?.ok || !p[phase]?.ok) {
        r[`${phase}WallS`] = r[`${phase}CpuS`] = r[`${phase}MaxRss`] = null;
        continue;
      }
      r[`${phase}WallS`] = ratio(c[phase]?.wallS, p[phase]?.wallS);
      r[`${phase}CpuS`] = ratio(c[phase]?.cpuS, p[phase]?.cpuS);
      r[`${phase}MaxRss`] = ratio(c[phase]?.maxRssKiB, p[phase]?.maxRssKiB);
    }
    r.repoBytesAfterFull = ratio(c.full?.repoBytes, p.full?.repoBytes);
    r.repoBytesAfterRepeat = ratio(c.repeat?.repoBytes, p.repeat?.repoBytes);
    ratios[`${variant}/${peer}`] = r;
  }
}

writeFileSync(outPath, JSON.stringify({ meta, results, ratios }, null, 2) + '\n');

// ---- markdown ----------------------------------------------------------------------------
const f = (x, d = 1) => (x == null ? '–' : Number(x).toFixed(d));
const mib = (b) => (b == null ? '–' : (b / 1048576).toFixed(1));
const out = [];
const m = meta.mutation;
out.push(`## Coffer vs peers: ${meta.sizeGiB} GiB guest disk`);
out.push('');
out.push(`- image: ${meta.image} (${mib(meta.diskBytes)} MiB, ${mib(meta.diskAllocatedBytes)} MiB allocated)`);
out.push(
  `- mutation between full and repeat: ${m ? `${m.regions} x ${m.regionBytes / 1048576} MiB regions, ${mib(m.bytesWritten)} MiB (${m.changedPercent} %), seed ${m.seed}` : 'n/a'}`,
);
out.push(`- page caches dropped before each phase: ${meta.cachesDropped ? 'yes' : 'NO (timings include warm caches)'}`);
if (meta.freePageReporting === 'yes') {
  const r = Object.entries(meta.reclaimKiB ?? {}).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)}`);
  out.push(
    `- free page reporting to the hypervisor: on; pages warmed before each phase: ${meta.warmPages === '1' ? 'yes' : 'NO'}` +
      `; MiB handed to the host during each phase: ${r.join(', ') || '-'}`,
  );
}
out.push(
  `- host: ${meta.cpu}, ${meta.nproc} CPUs, ${(meta.memTotalKiB / 1048576).toFixed(1)} GiB RAM, ${meta.kernel}, node ${meta.node}`,
);
out.push(
  `- versions: ${Object.entries(versions)
    .map(([k, v]) => `${k}=${v ?? '?'}`)
    .join(', ')}`,
);
out.push(`- run: ${meta.start} .. ${meta.end}`);
out.push('');
out.push(
  '| tool | phase | wall s | user s | sys s | CPU s | max RSS MiB | MiB/s | repo MiB after | new data MiB (tool-reported) | status |',
);
out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const [tool, phases] of Object.entries(results)) {
  for (const phase of ['full', 'repeat', 'restore']) {
    const e = phases[phase];
    if (!e) continue;
    const status =
      e.status !== 'ok'
        ? `**${e.status.toUpperCase()}**`
        : e.verify === 'MISMATCH'
          ? '**RESTORE MISMATCH**'
          : e.verify === 'ok'
            ? 'ok, cmp identical'
            : 'ok';
    out.push(
      `| ${tool} | ${phase} | ${f(e.wallS, 2)} | ${f(e.userS, 2)} | ${f(e.sysS, 2)} | ${f(e.cpuS, 2)} | ${f(e.maxRssKiB / 1024)} | ${f(e.mibPerS)} | ${mib(e.repoBytes)} | ${mib(e.newBytesReported)} | ${status} |`,
    );
  }
}
if (Object.keys(ratios).length) {
  const peers = Object.keys(ratios);
  out.push('');
  out.push(`| ratio (lower = coffer better) | ${peers.join(' | ')} |`);
  out.push(`|---|${peers.map(() => '---:').join('|')}|`);
  const rowsR = [
    ['full backup wall', 'fullWallS'],
    ['full backup CPU', 'fullCpuS'],
    ['repeat backup wall', 'repeatWallS'],
    ['repeat backup CPU', 'repeatCpuS'],
    ['restore wall', 'restoreWallS'],
    ['restore CPU', 'restoreCpuS'],
    ['full backup max RSS', 'fullMaxRss'],
    ['repo size after full', 'repoBytesAfterFull'],
    ['repo size after repeat', 'repoBytesAfterRepeat'],
  ];
  for (const [label, key] of rowsR) out.push(`| ${label} | ${peers.map((p) => f(ratios[p][key], 3)).join(' | ')} |`);
}
out.push('');
out.push(`results: ${outPath}`);
console.log(out.join('\n'));
