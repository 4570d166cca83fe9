#!/usr/bin/env node
// Bundles the compiled CLI (dist/, from tsc) into dist/bundle/: the `coffer` entry point and the codec worker, with the
// code they share split into chunks. npm packages stay external (installed beside it); only Coffer's ~200 modules are
// joined. Why: every `coffer` process loaded those modules one by one through Node's ESM loader (~0.15 s of CPU per
// start on the 2-core reference machine, before any work); the bundle starts in about half of that. ADR 0024.
// Paths the code computes from import.meta.url keep working because dist/bundle/ sits at the same depth as
// dist/<module>/ (../../package.json, ../../web/) and the worker is an entry point named as before (./codec-worker.js).
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// chunks are named by content hash: without a clean start, stale ones pile up (and would be packed)
rmSync('dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: {
    coffer: 'dist/bin/coffer.js',
    'codec-worker': 'dist/engine/codec-worker.js',
    demo: 'dist/bin/demo.js',
  },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
  legalComments: 'none',
});
