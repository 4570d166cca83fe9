import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as format from './index.js';

/** docs/FORMAT.md is normative: its constants table must match the code. */
test('FORMAT.md constants table matches the code', () => {
  const doc = readFileSync(new URL('../../../docs/FORMAT.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Constants'), doc.indexOf('## §0'));
  const rows = [...section.matchAll(/^\| ([A-Z_][A-Za-z_.]*) \| ([^|]+) \|/gm)];
  assert.ok(rows.length >= 15, `expected the constants table, found ${rows.length} rows`);
  const code = format as unknown as Record<string, unknown>;
  for (const [, name, raw] of rows) {
    const value = name!.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], code);
    const v = raw!.trim();
    const expected = v.startsWith('"') ? JSON.parse(v) : Number(v);
    assert.equal(value, expected, `FORMAT.md says ${name} = ${v}, the code has ${String(value)}`);
  }
});
