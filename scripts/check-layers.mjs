#!/usr/bin/env node
// Checks the dependency structure of src/ (docs/DESIGN.md §Layers) and exits 1 listing every violation:
// - direction: a module may import only from its own folder and from the layers below it (ALLOWED);
// - boundaries: other folders only through their index.ts; and the front ends (FRONT_ENDS) do not use the repository
//   layout (blob names and prefixes: `*_BLOB`, `*_PREFIX`, `*Blob`) even where an index.ts exports it;
// - cycles: no import cycle between modules (files) anywhere in src/, type-only imports included; each is reported
//   as its path (a.ts -> b.ts -> a.ts).
// Static imports, `export ... from`, side-effect imports and `import('...')` with a literal path all count.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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
  // `coffer proxy`: a data mover beside the server (it talks to it over HTTP only)
  proxy: ['shared', 'storage', 'repository', 'sources', 'engine', 'jobs', 'vsphere'],
  bin: ['shared', 'storage', 'sources', 'engine', 'jobs', 'cli', 'nbd', 'server', 'proxy', 'vsphere'],
};
// Front ends talk to repositories through the repository's and the engine's operations, never its object layout.
const FRONT_ENDS = ['cli', 'server'];
const LAYOUT_OWNERS = ['storage', 'repository'];
const LAYOUT_NAME = /^(?:[A-Z0-9_]+_(?:BLOB|PREFIX)|[a-z]\w*Blob)$/;

const isTest = (p) => p.endsWith('.test.ts');
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !isTest(p)) files.push(p);
  }
};
walk(SRC);
const testing = (p) => p.includes(`${join('storage', 'testing')}`);

/** The relative imports of one file: { spec, names (the imported bindings; [] for a default, namespace or dynamic import) }. */
function importsOf(text) {
  const out = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/^\s*\/\/.*$/gm, '');
  const stat = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const m of code.matchAll(stat)) {
    const clause = m[3];
    const braces = /\{([^}]*)\}/.exec(clause);
    const names = braces
      ? braces[1]
          .split(',')
          .map(
            (n) =>
              n
                .trim()
                .replace(/^type\s+/, '')
                .split(/\s+as\s+/)[0],
          )
          .filter(Boolean)
      : [];
    out.push({ spec: m[4], names });
  }
  for (const m of code.matchAll(/^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm)) out.push({ spec: m[1], names: [] });
  for (const m of code.matchAll(/\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) out.push({ spec: m[1], names: [] });
  return out;
}

/** The .ts file an import of `spec` from `file` names (NodeNext: './x.js' is ./x.ts), or undefined. */
function target(file, spec) {
  const p = resolve(dirname(file), spec);
  for (const c of [p.replace(/\.js$/, '.ts'), p, `${p}.ts`, join(p, 'index.ts')])
    if (c.endsWith('.ts') && existsSync(c)) return c;
  return undefined;
}

const problems = [];
const graph = new Map(); // file -> Set of files it imports (all of src/ but tests)
for (const file of files) {
  const from = relative(SRC, file).split('/')[0];
  const layered = !testing(file);
  if (layered && !(from in ALLOWED)) {
    problems.push(`${relative('.', file)}: folder ${from} is not in the layer table`);
    continue;
  }
  const edges = new Set();
  graph.set(file, edges);
  for (const { spec, names } of importsOf(readFileSync(file, 'utf8'))) {
    const to_ = target(file, spec);
    if (to_ && !isTest(to_)) edges.add(to_);
    if (!layered) continue;
    const rel = relative(SRC, resolve(dirname(file), spec)).split('/');
    const to = rel[0];
    if (to === from) continue;
    if (!ALLOWED[from].includes(to)) problems.push(`${relative('.', file)}: ${from} must not import ${to} (${spec})`);
    else if (!(rel.length === 2 && rel[1] === 'index.js'))
      problems.push(`${relative('.', file)}: import ${to} through its index.ts, not ${spec}`);
    if (FRONT_ENDS.includes(from) && LAYOUT_OWNERS.includes(to)) {
      const layout = names.filter((n) => LAYOUT_NAME.test(n));
      if (layout.length)
        problems.push(
          `${relative('.', file)}: ${from} must not use the ${to} layout (${layout.join(', ')}); ask the repository or an engine operation`,
        );
    }
  }
}

// Cycles: Tarjan's strongly connected components; each component of more than one file (or a file importing itself)
// holds at least one cycle, reported as the shortest path from its first file back to itself.
const index = new Map();
const low = new Map();
const onStack = new Set();
const stack = [];
const components = [];
let counter = 0;
const strongConnect = (root) => {
  // Iterative, so that a deep import chain cannot overflow the call stack.
  const work = [[root, [...(graph.get(root) ?? [])], 0]];
  index.set(root, counter);
  low.set(root, counter++);
  stack.push(root);
  onStack.add(root);
  while (work.length) {
    const frame = work[work.length - 1];
    const [v, next] = frame;
    if (frame[2] < next.length) {
      const w = next[frame[2]++];
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        index.set(w, counter);
        low.set(w, counter++);
        stack.push(w);
        onStack.add(w);
        work.push([w, [...graph.get(w)], 0]);
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
      continue;
    }
    work.pop();
    if (work.length) {
      const parent = work[work.length - 1][0];
      low.set(parent, Math.min(low.get(parent), low.get(v)));
    }
    if (low.get(v) === index.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || graph.get(v).has(v)) components.push(comp);
    }
  }
};
for (const f of [...graph.keys()].sort()) if (!index.has(f)) strongConnect(f);

const shortestCycle = (comp) => {
  const inComp = new Set(comp);
  const start = [...comp].sort()[0];
  const prev = new Map();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length) {
    const v = queue.shift();
    for (const w of [...graph.get(v)].sort()) {
      if (!inComp.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = prev.get(u)) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!seen.has(w)) {
        seen.add(w);
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
};
for (const comp of components) {
  const path = shortestCycle(comp).map((f) => relative(SRC, f));
  const more = comp.length > path.length - 1 ? ` (${comp.length} files in this cycle group)` : '';
  problems.push(`import cycle: ${path.join(' -> ')}${more}`);
}

if (problems.length) {
  console.error(`layer check: ${problems.length} violation(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(`layer check: ${files.length} modules, dependency direction ok, no import cycles`);
