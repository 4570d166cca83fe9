#!/usr/bin/env node
// Lists the lines longer than the formatter's width (biome.json formatter.lineWidth) in the files Biome formats:
// what the formatter cannot break (long template literals, strings, comments) must be broken by hand.
// Exits 1 if there is any. Run at the end of `npm run lint` (docs/adr/0008-tooling-biome-node24.md).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const config = JSON.parse(readFileSync('biome.json', 'utf8'));
const width = config.formatter.lineWidth;
const globs = config.files.includes.filter((g) => !g.startsWith('!'));
const excluded = config.files.includes.filter((g) => g.startsWith('!')).map((g) => g.slice(1));
const files = execFileSync('git', ['ls-files', '-z', '--', ...globs], { encoding: 'utf8' })
  .split('\0')
  .filter((f) => f && !excluded.some((x) => f === x || f.startsWith(`${x}/`)));
const long = [];
for (const file of files) {
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if ([...line].length > width) long.push(`${file}:${i + 1}: ${[...line].length} characters`);
    });
}
if (long.length) {
  console.error(`line width: ${long.length} line(s) over ${width} characters\n${long.map((l) => `  ${l}`).join('\n')}`);
  process.exit(1);
}
console.log(`line width: ${files.length} files, no line over ${width} characters`);
