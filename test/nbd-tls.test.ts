import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { coffer, json, tempDir } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { freePort, run } from './helpers/servers.js';

/** Makes a private CA and a server certificate for 127.0.0.1 with openssl, in qemu's tls-creds-x509 layout. */
function makeCerts(dir: string): void {
  const sh = (args: string[]) => run('openssl', args);
  sh([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'ca-key.pem'),
    '-out',
    join(dir, 'ca-cert.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=coffer test CA',
  ]);
  sh([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'server-key.pem'),
    '-out',
    join(dir, 'server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  writeFileSync(
    join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  sh([
    'x509',
    '-req',
    '-in',
    join(dir, 'server.csr'),
    '-CA',
    join(dir, 'ca-cert.pem'),
    '-CAkey',
    join(dir, 'ca-key.pem'),
    '-CAcreateserial',
    '-out',
    join(dir, 'server-cert.pem'),
    '-days',
    '2',
    '-extfile',
    join(dir, 'ext.cnf'),
  ]);
}

/** NBD over TLS (STARTTLS) against qemu-nbd with x509 credentials: verified, refused when unverifiable or plain. */
test('nbds:// against qemu-nbd with TLS: backup through a verified connection; unverified and plain refused', async () => {
  const tmp = tempDir('coffer-tls-');
  const pidFile = join(tmp.path, 'qemu-nbd.pid');
  try {
    makeCerts(tmp.path);
    const disk = join(tmp.path, 'disk.raw');
    makeDisk(disk, 4 * 1024 * 1024, 'tls');
    const port = await freePort();
    const q = spawnSync(
      'qemu-nbd',
      [
        '-r',
        '-f',
        'raw',
        '--object',
        `tls-creds-x509,id=tls0,dir=${tmp.path},endpoint=server,verify-peer=off`,
        '--tls-creds',
        'tls0',
        '-t',
        '--fork',
        `--pid-file=${pidFile}`,
        '-b',
        '127.0.0.1',
        '-p',
        String(port),
        disk,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(q.status, 0, q.stderr);
    const repo = join(tmp.path, 'repo');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K']).code, 0);
    const ok = coffer([
      'backup',
      '--repo',
      repo,
      '--vm',
      'tls',
      `nbds://127.0.0.1:${port}/?tls-ca=${join(tmp.path, 'ca-cert.pem')}`,
      '--json',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(json(ok).disks ? JSON.stringify(json(ok)) : '', /tls-ca/, 'no TLS parameters in the result');
    const out = join(tmp.path, 'out.raw');
    assert.equal(coffer(['restore', '--repo', repo, json(ok).id, '--disk', '0', '--target', out]).code, 0);
    assert.ok(readFileSync(out).equals(readFileSync(disk)));
    // a certificate we cannot verify (no CA given) is refused
    const untrusted = coffer(['backup', '--repo', repo, '--vm', 'tls2', `nbds://127.0.0.1:${port}/`, '--json']);
    assert.equal(untrusted.code, 8);
    assert.match(json(untrusted).error.message, /TLS failed/);
    // plain NBD to a TLS-only server: a clear hint
    const plain = coffer(['backup', '--repo', repo, '--vm', 'tls3', `nbd://127.0.0.1:${port}/`, '--json']);
    assert.equal(plain.code, 8);
    assert.match(json(plain).error.message, /TLS required/);
    assert.deepEqual(
      json(coffer(['list', '--repo', repo, '--json'])).map((p: { vm: { name: string } }) => p.vm.name),
      ['tls'],
    );
  } finally {
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
    } catch {
      /* not started */
    }
    tmp.cleanup();
  }
});
