#!/usr/bin/env node
// Builds the console (docs/DESIGN.md "Web console"): web/src/main.tsx bundled with Preact by esbuild into
// web/dist/app.js (minified, ES2022, no source map shipped), web/src/style.css into web/dist/app.css, and
// web/src/index.html copied. Type checking is `tsc -p web/tsconfig.json` (run before this by `npm run build:web`).
// A file whose content is unchanged is not written, and a changed one is replaced atomically (write + rename):
// `npm pack` (prepack) may run this while tests are serving web/dist. It reports on stderr (`npm pack --json` owns
// stdout).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const web = fileURLToPath(new URL('..', import.meta.url));
const out = `${web}dist`;
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, write: false, outdir: out, logLevel: 'warning', legalComments: 'none' };
const js = await build({
  ...common,
  entryPoints: { app: `${web}src/main.tsx` },
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
});
const css = await build({ ...common, entryPoints: { app: `${web}src/style.css` } });
const files = [
  ...js.outputFiles.map((f) => [basename(f.path), f.contents]),
  ...css.outputFiles.map((f) => [basename(f.path), f.contents]),
  ['index.html', readFileSync(`${web}src/index.html`)],
];
let written = 0;
for (const [name, contents] of files) {
  const target = `${out}/${name}`;
  if (existsSync(target) && Buffer.from(contents).equals(readFileSync(target))) continue;
  const tmp = `${out}/.${name}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, target);
  written++;
}
const keep = new Set(files.map(([name]) => name));
for (const f of readdirSync(out)) if (!keep.has(f) && !f.startsWith('.')) rmSync(`${out}/${f}`, { force: true });
const sizes = files.map(([name, c]) => `${name} ${c.length} B`).join(', ');
console.error(`console built: ${sizes} -> web/dist (${written} file(s) changed)`);
