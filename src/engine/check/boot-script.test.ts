import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { BOOT_SCRIPT_LIMITS, describeScript, requireBootScript, runBootScript, scriptTail } from './boot-script.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-boot-script-'));
after(() => rmSync(dir, { recursive: true, force: true }));
function script(name: string, body: string, mode = 0o755): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}`);
  chmodSync(p, mode);
  return p;
}
const usage = (re: RegExp) => (e: unknown) => e instanceof CofferError && e.code === 'USAGE' && re.test(e.message);

test('requireBootScript: missing, a directory, not executable are USAGE; else the absolute path', async () => {
  await assert.rejects(requireBootScript(join(dir, 'none')), usage(/no such file/));
  await assert.rejects(requireBootScript(dir), usage(/not a regular file/));
  await assert.rejects(requireBootScript(script('plain.sh', 'exit 0\n', 0o644)), usage(/not executable/));
  const ok = script('ok.sh', 'exit 0\n');
  assert.equal(await requireBootScript(ok), ok);
});

test('runBootScript: the environment given, exit 0 passes, another code fails with the end of the output', async () => {
  const ok = await runBootScript(
    script('env.sh', 'echo "log=$COFFER_BOOT_SERIAL_LOG"\n'),
    {
      COFFER_BOOT_SERIAL_LOG: '/x/serial.log',
    },
    { timeoutMs: 60_000, cwd: dir },
  );
  assert.equal(ok.ok, true);
  assert.equal(ok.output, 'log=/x/serial.log');
  const bad = await runBootScript(
    script('bad.sh', 'echo one\necho two >&2\nexit 3\n'),
    {},
    { timeoutMs: 60_000, cwd: dir },
  );
  assert.equal(bad.ok, false);
  assert.equal(bad.exitCode, 3);
  assert.equal(bad.output, 'one\ntwo');
  assert.equal(describeScript(bad), 'boot script bad.sh exited with 3: two');
});

test('runBootScript: killed with its process group at the time limit', async () => {
  const r = await runBootScript(
    script('hang.sh', 'echo started\nsleep 600 &\nsleep 600\n'),
    {},
    {
      timeoutMs: 200,
      cwd: dir,
    },
  );
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 'SIGKILL');
  assert.match(describeScript(r), /^boot script hang\.sh did not finish within 0\.2 s \(killed\): started$/);
});

test('script output tail: control characters removed, the last lines, bounded', () => {
  const t = scriptTail(Array.from({ length: 100 }, (_, i) => `\x1b[31mline ${i}\r`).join('\n'));
  assert.equal(t.split('\n').length, BOOT_SCRIPT_LIMITS.tailLines);
  assert.equal(t.split('\n').at(-1), 'line 99');
  assert.ok(scriptTail('y'.repeat(100_000)).length <= BOOT_SCRIPT_LIMITS.tailChars);
});
