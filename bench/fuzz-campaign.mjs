#!/usr/bin/env node
// fuzz-campaign.mjs [--iterations N] [--seed S] [--targets a,b] [--out FILE.json]
// The longer fuzzing campaign of issue 21: the properties of test/fuzz-parsers.test.ts (harness in
// test/helpers/fuzz-targets.ts) run N mutated inputs per target from fast-check seed S, counting results, coded
// errors, crashes (anything but a CofferError of an allowed code) and hangs (work budget exceeded), and the inputs'
// distinct outcomes. Needs the compiled tests (npm test builds dist-test/; or: npx tsc -p tsconfig.test.json).
// Prints a Markdown table for docs/BENCHMARKS.md; exits 1 if any crash or hang was found (the inputs are saved).
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = resolve(import.meta.dirname, '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const iterations = Number(arg('iterations', '2000'));
const seed = Number(arg('seed', '1'));
const only = arg('targets', '')?.split(',').filter(Boolean) ?? [];
const out = arg('out', '');

const harness = join(ROOT, 'dist-test/test/helpers/fuzz-targets.js');
if (!existsSync(harness)) {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.test.json')],
    { stdio: 'inherit', cwd: ROOT },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const fc = (await import('fast-check')).default;
const { fuzzTargets, mutationArb, applyMutation, judge } = await import(harness);

const work = mkdtempSync(join(tmpdir(), 'coffer-fuzz-campaign-'));
const findings = join(ROOT, 'bench', 'fuzz-findings');
const rows = [];
let bad = 0;
try {
  for (const t of fuzzTargets()) {
    if (only.length && !only.includes(t.name)) continue;
    const started = process.hrtime.bigint();
    const seeds = await t.seeds(work);
    const counts = { ok: 0, coded: 0, crash: 0, hang: 0 };
    const codes = new Map();
    const seedVerdicts = [];
    for (const s of seeds) seedVerdicts.push((await judge(t, s, work)).kind);
    const inputs = fc.sample(mutationArb(seeds.length), { numRuns: iterations, seed });
    for (const [i, m] of inputs.entries()) {
      const input = applyMutation(seeds, m);
      const v = await judge(t, input, work);
      counts[v.kind]++;
      if (v.kind === 'coded') codes.set(v.detail, (codes.get(v.detail) ?? 0) + 1);
      if (v.kind === 'crash' || v.kind === 'hang') {
        bad++;
        mkdirSync(findings, { recursive: true });
        const f = join(findings, `${t.name}-${seed}-${i}.bin`);
        writeFileSync(f, input);
        console.error(
          `${t.name} #${i}: ${v.kind}: ${v.detail.split('\n').slice(0, 3).join(' | ')} (input saved as ${f})`,
        );
      }
    }
    await t.dispose?.();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    rows.push({
      target: t.name,
      seeds: seeds.length,
      seedsOk: seedVerdicts.every((k) => k === 'ok'),
      inputs: iterations,
      ...counts,
      codes: Object.fromEntries(codes),
      seconds: Math.round(seconds * 10) / 10,
    });
    console.error(`${t.name}: ${JSON.stringify(rows.at(-1))}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`| target | seeds (parse) | inputs | parsed | coded errors | crashes | hangs | seconds |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const r of rows)
  console.log(
    `| ${r.target} | ${r.seeds} (${r.seedsOk ? 'all' : 'NOT all'}) | ${r.inputs} | ${r.ok} | ${r.coded} (${Object.entries(
      r.codes,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}) | ${r.crash} | ${r.hang} | ${r.seconds} |`,
  );
if (out) writeFileSync(out, JSON.stringify({ iterations, seed, rows }, null, 2));
process.exit(bad > 0 ? 1 : 0);
