#!/usr/bin/env node
// Builds nothing: `npm test` runs `npm run build` first (pretest) and compiles the tests here.
// Runs every *.test.js under dist-test/ with node's test runner and ends with its summary.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

rmSync('dist-test', { recursive: true, force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json'], {
  stdio: 'inherit',
});
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const files = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
};
walk('dist-test');
const filter = process.argv[2];
const selected = filter ? files.filter((f) => f.includes(filter)) : files;
const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', ...selected.sort()];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, COFFER_TEST: '1' } });
process.exit(r.status ?? 1);
