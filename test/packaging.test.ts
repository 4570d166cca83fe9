// Issue 20, item 4: the npm package works when installed from its packed tarball into an empty prefix (as
// `npm install -g` does on a server): `npm pack`, `npm install -g --prefix DIR TARBALL`, then `coffer --version` and a
// small backup and restore from that install.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';

const ROOT = resolve('.');
const run = (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) => {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', ...opts.env },
    encoding: 'utf8',
    timeout: 3_600_000, // a guard against a hung install, not an assertion
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
};

// Two modes. By default (every `npm test`, CI included) the install is `--prefer-offline --ignore-scripts`: packages
// come from npm's cache where the `npm ci` of this same run has put them (else the registry), and the native addons
// (better-sqlite3, zstd-napi, libpq) are not compiled a second time: their build/ directories are copied from this
// checkout's node_modules, which `npm ci` has just built from source for these exact versions (compiling them again
// takes 10-20 minutes on 2 cores). What this proves: the tarball's contents, its dependency tree resolving from the
// package alone, the bin link, and the installed CLI and server parts running outside the source tree.
// COFFER_PACKAGING=full installs exactly as a user does (registry, install scripts, native builds): a release check.
const FULL = process.env.COFFER_PACKAGING === 'full';
const NATIVE = ['better-sqlite3', 'zstd-napi', 'libpq'];

describe('npm package: packed, installed into an empty prefix, run from there', () => {
  const tmp = tempDir('coffer-pack-');
  after(() => tmp.cleanup());
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  const prefix = join(tmp.path, 'prefix');
  const bin = join(prefix, 'bin', 'coffer');

  it('npm pack: the tarball has the CLI, the console and the docs, not the tests', () => {
    const r = run('npm', ['pack', '--json', '--pack-destination', tmp.path]);
    assert.equal(r.code, 0, r.stderr);
    const [info] = JSON.parse(r.stdout) as [{ filename: string; files: { path: string }[] }];
    const files = info.files.map((f) => f.path);
    for (const f of [
      'dist/bundle/coffer.js',
      'web/dist/index.html',
      'web/dist/app.js',
      'README.md',
      'docs/OPERATIONS.md',
    ])
      assert.ok(files.includes(f), `${f} missing from the package`);
    for (const f of ['packaging/coffer-server.service', 'packaging/server.example.json'])
      assert.ok(files.includes(f), `${f} missing from the package`);
    assert.ok(!files.some((f) => f.startsWith('dist-test/') || f.startsWith('test/')), 'tests are not shipped');
    assert.ok(existsSync(join(tmp.path, info.filename)));
    assert.equal(info.filename, `${pkg.name}-${pkg.version}.tgz`);
  });

  it('npm install -g --prefix DIR TARBALL; coffer --version; a backup and a restore from that install', () => {
    const tarball = join(tmp.path, `${pkg.name}-${pkg.version}.tgz`);
    const inst = run(
      'npm',
      ['install', '-g', '--prefix', prefix, tarball, ...(FULL ? [] : ['--prefer-offline', '--ignore-scripts'])],
      { cwd: tmp.path },
    );
    assert.equal(inst.code, 0, `${inst.stdout}\n${inst.stderr}`);
    assert.ok(existsSync(bin), `${bin} was not installed`);
    if (!FULL) {
      const installed = join(prefix, 'lib', 'node_modules', pkg.name, 'node_modules');
      for (const m of NATIVE) {
        const built = join(ROOT, 'node_modules', m, 'build');
        const target = join(installed, m);
        if (!existsSync(built)) continue; // libpq: optional (pg-native), absent where libpq-dev was not installed
        assert.ok(existsSync(target), `${m} is not in the installed package's dependencies`);
        const version = (dir: string) =>
          (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
        if (version(target) === version(join(ROOT, 'node_modules', m))) {
          cpSync(built, join(target, 'build'), { recursive: true });
        } else {
          // the registry has a newer release in the package's range than this checkout's lock: build that one
          const rb = run('npm', ['rebuild', m], { cwd: join(prefix, 'lib', 'node_modules', pkg.name) });
          assert.equal(rb.code, 0, `${rb.stdout}\n${rb.stderr}`);
        }
      }
    }
    // the installed CLI, from outside the source tree, with its own node_modules
    const env = { COFFER_PASSWORD: TEST_PASSWORD, COFFER_REPO: join(tmp.path, 'repo') };
    const v = run(bin, ['--version'], { cwd: tmp.path, env });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkg.version);
    const disk = join(tmp.path, 'vm.raw');
    makeDisk(disk, 1024 * 1024, 'packaged');
    const init = run(bin, ['init', '--chunk-size', '64K', '--kdf-cost', '1024', '--json'], { cwd: tmp.path, env });
    assert.equal(init.code, 0, init.stderr);
    const b = run(bin, ['backup', '--vm', 'packaged', disk, '--json'], { cwd: tmp.path, env });
    assert.equal(b.code, 0, b.stderr);
    const point = JSON.parse(b.stdout) as { id: string };
    const out = join(tmp.path, 'restored.raw');
    const r = run(bin, ['restore', point.id, '--target', out, '--json'], { cwd: tmp.path, env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(out).equals(readFileSync(disk)));
    // the server's lazily loaded parts (fastify, SQLite) are installed too
    const c = run(
      bin,
      ['catalog', 'backup', '--data', join(tmp.path, 'nodata'), '--to', join(tmp.path, 'c.db'), '--json'],
      {
        cwd: tmp.path,
        env,
      },
    );
    assert.equal(c.code, 9, c.stdout + c.stderr); // NOT_FOUND: no catalog there; the module loaded
    assert.match(c.stdout, /"code":"NOT_FOUND"/);
  });
});
