import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  GUEST_NET_LINE,
  GUEST_TCP_PORT,
  GUEST_TCP_REPLY,
  KERNEL,
  KERNEL_MODULES,
  MARKER,
  QEMU_GA,
  makeBootImage,
  qemuMissing,
} from './helpers/boot-image.js';
import { coffer, json, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { api, makeToken, startServer, until, waitJob } from './helpers/coffer-server.js';

/**
 * `coffer check --boot` with the guest agent and a boot script (issue 18 item 3), against a real QEMU and a real
 * guest: Debian's kernel with its virtio modules and Debian's qemu-ga in a busybox initramfs (test/helpers/boot-image.ts).
 * - `--boot-agent`: the boot passes on the agent's guest-sync + guest-ping answers, over a virtio-serial port on a
 *   Unix socket in the check's private directory; the plain image (no agent, powers off after the marker) fails.
 * - `--boot-script` with `--boot-forward`: the script reads the serial log and talks to the guest's TCP service
 *   through the forwarded 127.0.0.1 port (restricted user networking); a script exiting 3 fails the boot with its
 *   output; a hanging one is killed at its limit. A missing or non-executable script is USAGE before anything runs.
 * Each check boots once under TCG here (~25-40 s on 2 shared cores): Node 20 only (NODE24_SKIP).
 */
describe('coffer check --boot: guest agent and boot script (QEMU)', { skip: qemuMissing }, () => {
  const tmp = tempDir('coffer-boot-agent-');
  const repo = join(tmp.path, 'repo');
  let agentPoint = '';
  let plainPoint = '';
  const script = (name: string, body: string) => {
    const p = join(tmp.path, name);
    writeFileSync(p, `#!/bin/bash\n${body}`);
    chmodSync(p, 0o755);
    return p;
  };
  const check = (id: string, extra: string[]) =>
    coffer([
      'check',
      '--repo',
      repo,
      id,
      '--boot',
      '--boot-memory',
      '256',
      '--boot-timeout',
      '300',
      ...extra,
      '--json',
    ]);

  before(() => {
    for (const f of [KERNEL, join(KERNEL_MODULES, 'ORDER'), QEMU_GA])
      assert.ok(existsSync(f), `${f} is missing: run scripts/setup.sh (kernel, its modules, qemu-guest-agent)`);
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '256K', '--kdf-cost', '1024']).code, 0);
    const backup = (vm: string, img: string) => {
      const r = coffer(['backup', '--repo', repo, '--vm', vm, img, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return json(r).id as string;
    };
    agentPoint = backup('with-agent', makeBootImage(tmp.path, 'agent', { kernel: true, agent: true }));
    plainPoint = backup('plain', makeBootImage(tmp.path, 'plain', { kernel: true }));
  });
  after(() => tmp.cleanup());

  test('a script that is missing or not executable is USAGE, before the check starts', () => {
    const missing = check(agentPoint, ['--boot-script', join(tmp.path, 'no-such-script')]);
    assert.equal(missing.code, 2, missing.stdout + missing.stderr);
    assert.match(json(missing).error.message, /--boot-script .*no-such-script: no such file/);
    const plain = join(tmp.path, 'not-executable.sh');
    writeFileSync(plain, '#!/bin/sh\nexit 0\n');
    const r = check(agentPoint, ['--boot-script', plain]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(json(r).error.message, /not executable/);
    assert.equal(coffer(['check', '--repo', repo, agentPoint, '--boot-agent']).code, 2, '--boot-agent without --boot');
    // nothing was checked, nothing recorded
    assert.ok(!json(coffer(['show', '--repo', repo, agentPoint, '--json'])).status.check);
  });

  test('--boot-agent: the guest agent answers guest-sync and guest-ping over virtio-serial; recorded', () => {
    const r = check(agentPoint, ['--boot-agent']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rec = json(r);
    assert.equal(rec.boot.version, 2);
    assert.equal(rec.boot.ok, true);
    assert.equal(rec.boot.signal, 'agent');
    assert.equal(rec.boot.ended, 'agent');
    assert.match(rec.boot.console, /COFFER-GUEST agent port: \/dev\/vport\d+p\d+/);
    console.log(`# boot to the agent's answer: ${rec.boot.elapsedMs} ms (${rec.boot.accel})`);
    const show = json(coffer(['show', '--repo', repo, agentPoint, '--json']));
    assert.equal(show.status.check.boot.signal, 'agent');
    assert.equal(show.status.check.boot.ended, 'agent');
    assert.match(coffer(['show', '--repo', repo, agentPoint]).stdout, /booted {4}ok \(guest agent answered after/);
  });

  test('--boot-agent on a guest without the agent fails: the marker does not count, QEMU exited first', () => {
    const r = check(plainPoint, ['--boot-agent']);
    assert.equal(r.code, 50, r.stdout + r.stderr);
    const rec = json(r);
    assert.equal(rec.boot.ok, false);
    assert.equal(rec.boot.signal, 'agent');
    assert.equal(rec.boot.ended, 'exit');
    assert.match(rec.boot.console, new RegExp(MARKER), 'the guest did boot to its marker');
    assert.match(rec.boot.note, /QEMU exited \(code 0\) after .* before the guest agent answered/);
  });

  test('--boot-script with --boot-forward: reads the serial log, reaches the guest through the forward; passes', () => {
    const pass = script(
      'pass.sh',
      `grep -q '${GUEST_NET_LINE}' "$COFFER_BOOT_SERIAL_LOG" || { echo "not in the serial log"; exit 1; }
[ -S "$COFFER_BOOT_QMP_SOCKET" ] || { echo "no QMP socket"; exit 1; }
[ -z "$COFFER_BOOT_AGENT_SOCKET" ] || { echo "an agent socket without --boot-agent"; exit 1; }
for i in $(seq 1 60); do
  # the guest's nc loop may not listen yet (the marker comes right after it is started)
  if exec 3<>/dev/tcp/127.0.0.1/$COFFER_BOOT_PORT_${GUEST_TCP_PORT}; then
    read -r -t 10 line <&3; exec 3<&-
    [ "$line" = ${GUEST_TCP_REPLY} ] && { echo "guest answered $line via $COFFER_BOOT_FORWARDS"; exit 0; }
  fi
  sleep 1
done
echo "the guest did not answer on port ${GUEST_TCP_PORT}"; exit 1
`,
    );
    const r = check(agentPoint, [
      '--boot-marker',
      MARKER,
      '--boot-script',
      pass,
      '--boot-script-timeout',
      '120',
      '--boot-forward',
      String(GUEST_TCP_PORT),
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rec = json(r);
    assert.equal(rec.boot.ok, true);
    assert.equal(rec.boot.ended, 'marker');
    assert.equal(rec.boot.forwards.length, 1);
    assert.equal(rec.boot.forwards[0].guestPort, GUEST_TCP_PORT);
    assert.equal(rec.boot.script.ok, true);
    assert.equal(rec.boot.script.exitCode, 0);
    assert.match(rec.boot.script.output, new RegExp(`guest answered ${GUEST_TCP_REPLY} via ${GUEST_TCP_PORT}=\\d+`));
  });

  test('a script exiting 3 fails the boot with its exit code and the end of its output', () => {
    const fail = script('fail.sh', 'echo "checking the service"\necho "service answered 500" >&2\nexit 3\n');
    const r = check(agentPoint, ['--boot-marker', MARKER, '--boot-script', fail]);
    assert.equal(r.code, 50, r.stdout + r.stderr);
    const rec = json(r);
    assert.equal(rec.boot.ok, false);
    assert.equal(rec.boot.ended, 'marker', 'the guest booted; the script failed');
    assert.equal(rec.boot.script.exitCode, 3);
    assert.equal(rec.boot.script.timedOut, false);
    assert.equal(rec.boot.script.output, 'checking the service\nservice answered 500');
    assert.equal(rec.boot.note, 'boot script fail.sh exited with 3: service answered 500');
    assert.ok(rec.problems.includes('boot: boot script fail.sh exited with 3: service answered 500'), rec.problems);
    const show = json(coffer(['show', '--repo', repo, agentPoint, '--json']));
    assert.equal(show.status.state, 'failed');
    assert.equal(show.status.check.boot.script.exitCode, 3);
    assert.match(coffer(['show', '--repo', repo, agentPoint]).stdout, /script {4}fail\.sh: FAILED \(exit 3\)/);
  });

  test('a script that hangs is killed at its time limit (its whole process group) and fails the boot', () => {
    const pidFile = join(tmp.path, 'hang-child.pid');
    const hang = script(
      'hang.sh',
      `echo "waiting for something that never comes"\nsleep 600 &\necho $! > ${pidFile}\nsleep 600\n`,
    );
    const r = check(agentPoint, ['--boot-marker', MARKER, '--boot-script', hang, '--boot-script-timeout', '2']);
    assert.equal(r.code, 50, r.stdout + r.stderr);
    const rec = json(r);
    assert.equal(rec.boot.ok, false);
    assert.equal(rec.boot.script.timedOut, true);
    assert.equal(rec.boot.script.signal, 'SIGKILL');
    assert.equal(rec.boot.script.exitCode, null);
    assert.equal(rec.boot.script.output, 'waiting for something that never comes');
    assert.match(rec.boot.note, /^boot script hang\.sh did not finish within 2 s \(killed\): waiting for/);
    const child = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(child > 0);
    // gone, or a zombie nobody reaped yet (a container's pid 1 may not): either way it no longer runs
    let state: string | undefined;
    try {
      state = /State:\s+(\S)/.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1];
    } catch {
      state = undefined;
    }
    assert.ok(state === undefined || state === 'Z', `the script's background process ${child} outlived it (${state})`);
  });

  // the server path: a check job with the agent and a script from bootScriptsDir, run by the server's own runner
  test('server: a check job with the agent and a bootScriptsDir script; the API shows the boot part', async () => {
    const scripts = join(tmp.path, 'boot-scripts');
    mkdirSync(scripts);
    writeFileSync(
      join(scripts, 'smoke.sh'),
      `#!/bin/bash\n[ -S "$COFFER_BOOT_AGENT_SOCKET" ] && echo agent-socket-ok\n`,
    );
    chmodSync(join(scripts, 'smoke.sh'), 0o755);
    writeFileSync(join(tmp.path, 'repo.pw'), `${TEST_PASSWORD}\n`);
    const dataDir = join(tmp.path, 'data');
    const server = await startServer({
      dir: tmp.path,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(tmp.path, 'repo.pw') }],
        bootScriptsDir: scripts,
        retries: { maxAttempts: 1, backoffSeconds: 0 },
      },
    });
    try {
      const admin = makeToken(dataDir, 'admin');
      await until('the point in the catalog', async () => {
        const r = await api(server.url, 'GET', '/api/v1/restore-points?vm=with-agent', { token: admin });
        return r.body.items?.length > 0;
      });
      const j = await api(server.url, 'POST', '/api/v1/jobs', {
        token: admin,
        body: {
          kind: 'check',
          repository: 'main',
          pointId: agentPoint,
          boot: { timeoutSeconds: 300, agent: true, script: 'smoke.sh', scriptTimeoutSeconds: 60 },
        },
      });
      assert.equal(j.status, 202, j.text);
      const job = await waitJob(server.url, admin, j.body.items[0].id, 400_000);
      assert.equal(job.status, 'succeeded', JSON.stringify(job.logs));
      assert.equal(job.result.boot.signal, 'agent');
      assert.equal(job.result.boot.script.output, 'agent-socket-ok');
      const p = (await api(server.url, 'GET', '/api/v1/restore-points?vm=with-agent', { token: admin })).body.items[0];
      assert.equal(p.status.check.ok, true);
      assert.equal(p.status.check.boot.ok, true);
      assert.equal(p.status.check.boot.signal, 'agent');
      assert.equal(p.status.check.boot.script.ok, true);
      // a path instead of a name is refused by the API (who starts jobs does not choose what runs)
      const bad = await api(server.url, 'POST', '/api/v1/jobs', {
        token: admin,
        body: { kind: 'check', repository: 'main', pointId: agentPoint, boot: { script: '/bin/sh' } },
      });
      assert.equal(bad.status, 400, bad.text);
    } finally {
      await server.stop();
    }
  });
});
