#!/usr/bin/env node
// Builds the console (docs/DESIGN.md "Console"): web/src/main.tsx bundled with Preact by esbuild into
// web/dist/app.js (minified, ES2022, no source map shipped), web/src/style.css into web/dist/app.css, and
// web/src/index.html copied. Type checking is `tsc -p web/tsconfig.json` (run before this by `npm run build:web`).
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const web = fileURLToPath(new URL('..', import.meta.url));
const out = `${web}dist`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const r = await build({
  entryPoints: { app: `${web}src/main.tsx` },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: out,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
await build({
  entryPoints: { app: `${web}src/style.css` },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: 'warning',
});
copyFileSync(`${web}src/index.html`, `${out}/index.html`);
const bytes = Object.entries(r.metafile.outputs).map(([f, o]) => `${f.replace(/.*\//, '')} ${o.bytes} B`);
console.log(`console built: ${bytes.join(', ')} -> web/dist`);
