import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BOOT_LIMITS, bootSize, consoleTail } from './qemu-boot.js';

test('boot VM size: the stored configuration, capped; an override; untrusted values ignored', () => {
  const s = bootSize({ kind: 'vsphere-vm', memoryMB: 512, numCPU: 1 });
  assert.equal(s.cpus, 1);
  assert.ok(s.memoryMB <= 512 && s.memoryMB >= BOOT_LIMITS.minMemoryMB);
  const big = bootSize({ memoryMB: 1_000_000, numCPU: 64 });
  assert.ok(big.memoryMB <= BOOT_LIMITS.maxMemoryMB);
  assert.ok(big.cpus <= BOOT_LIMITS.maxCpus);
  assert.ok(bootSize({}, { memoryMB: 256 }).memoryMB <= 256);
  const hostile = bootSize({ memoryMB: '9999', numCPU: -3 });
  assert.equal(hostile.cpus, 1);
  assert.ok(hostile.memoryMB <= BOOT_LIMITS.defaultMemoryMB);
});

test('console tail: escapes and control characters removed, the last 40 lines, at most 4000 chars', () => {
  const lines = Array.from({ length: 100 }, (_, i) => `\x1b[2Jline ${i}\r`);
  const t = consoleTail(`${lines.join('\n')}\n\x07`);
  assert.equal(t.split('\n').length, BOOT_LIMITS.tailLines);
  assert.equal(t.split('\n')[0], 'line 60');
  assert.equal(t.split('\n').at(-1), 'line 99');
  assert.ok(consoleTail('x'.repeat(10_000)).length <= BOOT_LIMITS.tailChars);
});
