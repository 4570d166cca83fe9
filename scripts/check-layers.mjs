#!/usr/bin/env node
// Checks the dependency direction of src/ (docs/DESIGN.md §Layers): a module may import only from its own folder
// and from the layers below it, and other folders only through their index.ts. Exits 1 listing every violation.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve('src');
// Who may import whom (besides itself). Lower layers first.
const ALLOWED = {
  shared: [],
  format: ['shared'],
  crypto: ['shared'],
  storage: ['shared'],
  nbd: ['shared'],
  fs: ['shared'],
  sources: ['shared', 'nbd'],
  vsphere: ['shared', 'sources', 'nbd'],
  repository: ['shared', 'format', 'crypto', 'storage'],
  engine: ['shared', 'format', 'crypto', 'storage', 'repository', 'sources', 'nbd', 'fs'],
  // job descriptions and their runner: above the engine, below the front ends; vSphere is injected, not imported
  jobs: ['shared', 'format', 'repository', 'sources', 'engine'],
  cli: ['shared', 'format', 'storage', 'repository', 'sources', 'engine', 'jobs', 'nbd', 'fs', 'vsphere'],
  server: ['shared', 'format', 'storage', 'repository', 'sources', 'engine', 'jobs', 'fs', 'vsphere'],
  bin: ['shared', 'storage', 'sources', 'engine', 'jobs', 'cli', 'nbd', 'server', 'vsphere'],
};

const files = [];
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !p.includes(`${join('storage', 'testing')}`))
      files.push(p);
  }
};
walk(SRC);

const problems = [];
for (const file of files) {
  const from = relative(SRC, file).split('/')[0];
  if (!(from in ALLOWED)) {
    problems.push(`${relative('.', file)}: folder ${from} is not in the layer table`);
    continue;
  }
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    const target = resolve(dirname(file), m[1]);
    const rel = relative(SRC, target).split('/');
    const to = rel[0];
    if (to === from) continue;
    if (!ALLOWED[from].includes(to)) problems.push(`${relative('.', file)}: ${from} must not import ${to} (${m[1]})`);
    else if (!(rel.length === 2 && rel[1] === 'index.js'))
      problems.push(`${relative('.', file)}: import ${to} through its index.ts, not ${m[1]}`);
  }
}
if (problems.length) {
  console.error(`layer check: ${problems.length} violation(s)\n` + problems.map((p) => `  ${p}`).join('\n'));
  process.exit(1);
}
console.log(`layer check: ${files.length} modules, dependency direction ok`);
