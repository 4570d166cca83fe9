import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, tempDir } from './helpers/cli.js';
import { MiB, T_MTIME, partitionDisk, partitionsOf, sh } from './helpers/fs-images.js';
import {
  ADS_DATA,
  ADS_NAME,
  JUNCTION_TARGET,
  NTFS_MANY,
  makeNtfsTree,
  manyStreamData,
  mkNtfs,
  placeNtfs,
} from './helpers/ntfs-images.js';
import { expectOk } from './helpers/more-cli.js';

const T = { timeout: 180_000 };

/**
 * File-level restore of NTFS through the real CLI: volumes made by mkntfs + wimapply + ntfscp, placed in an MBR disk
 * (sfdisk) and a GPT disk with ESP, MSR and basic data partitions (sgdisk), backed up, listed and copied out.
 */
describe('coffer files ls/get on NTFS', () => {
  const tmp = tempDir('coffer-files-ntfs-');
  const repo = join(tmp.path, 'repo');
  const mbr = join(tmp.path, 'mbr.raw');
  const gpt = join(tmp.path, 'gpt.raw');
  const src = join(tmp.path, 'src');
  let files: string[] = [];
  let compressed = new Map<string, Buffer>();
  let id = '';

  before(() => {
    mkdirSync(src);
    files = makeNtfsTree(src).files;
    const vol = join(tmp.path, 'ntfs.vol');
    compressed = mkNtfs(vol, src, 48 * MiB, tmp.path);
    partitionDisk(mbr, 64 * MiB, 'label: dos\nstart=2048, size=48M, type=7, bootable\n');
    placeNtfs(vol, mbr, partitionsOf(mbr)[0]!.start);
    sh('truncate', ['-s', String(80 * MiB), gpt]);
    sh('sgdisk', [
      '-n',
      '1:2048:+8M',
      '-t',
      '1:EF00',
      '-n',
      '2:0:+4M',
      '-t',
      '2:0C01',
      '-n',
      '3:0:+48M',
      '-t',
      '3:0700',
      gpt,
    ]);
    placeNtfs(vol, gpt, JSON.parse(sh('sfdisk', ['--json', gpt])).partitiontable.partitions[2].start * 512);
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024', '--json']));
    id = expectOk(coffer(['backup', '--repo', repo, '--vm', 'win', mbr, gpt, '--json'])).id;
  });
  after(() => tmp.cleanup());
  const run = (args: string[]) => coffer(['files', ...args, '--repo', repo, '--no-progress']);

  test('partitions: MBR NTFS, GPT with ESP, MSR (no filesystem, no error) and basic data', T, () => {
    const m = expectOk(run(['ls', id, '--disk', '0', '--json']));
    assert.deepEqual(
      m.partitions.map((p: any) => [p.number, p.filesystem]),
      [[1, 'ntfs']],
    );
    const g = expectOk(run(['ls', id, '--disk', '1', '--json']));
    assert.deepEqual(
      g.partitions.map((p: any) => [p.number, p.role, p.filesystem ?? null]),
      [
        [1, 'EFI system partition', null],
        [2, 'Microsoft reserved (MSR, no filesystem)', null],
        [3, 'Microsoft basic data', 'ntfs'],
      ],
    );
    const text = run(['ls', id, '--disk', '1']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^\s+2\s+.*\(Microsoft reserved \(MSR, no filesystem\)\)/m);
  });

  test('ls: entries with times, attributes, streams; a big directory; few chunks read', T, () => {
    const r = expectOk(run(['ls', id, '--disk', '1', '--partition', '3', '/', '--json']));
    assert.equal(r.filesystem, 'ntfs');
    assert.deepEqual(r.warnings, []);
    const by = new Map<string, any>(r.entries.map((e: any) => [e.name, e]));
    assert.equal(by.get('big.bin').mtime, new Date(T_MTIME).toISOString());
    assert.ok(by.get('big.bin').ctime);
    assert.ok(by.get('compressed.txt').attributes.includes('compressed'));
    assert.deepEqual(
      by
        .get('with-stream.txt')
        .streams.map((s: any) => s.name)
        .sort(),
      [ADS_NAME, 'second'],
    );
    assert.equal(by.get('junction').type, 'symlink');
    assert.equal(by.get('junction').linkTarget, JUNCTION_TARGET);
    assert.ok(r.chunksRead <= 40, `ls / read ${r.chunksRead} of ${r.chunksTotal} chunks`);
    const many = expectOk(run(['ls', id, '--disk', '0', '--partition', '1', '/many', '--json']));
    assert.equal(many.entries.length, NTFS_MANY);
  });

  test('get: the whole volume back (content, mtimes, hard links, symlinks; streams with --streams)', T, () => {
    const out = join(tmp.path, 'out');
    const r = expectOk(
      run(['get', id, '--disk', '0', '--partition', '1', '/', '--target', out, '--streams', '--json']),
    );
    assert.deepEqual(r.failed, []);
    for (const f of files) {
      assert.ok(existsSync(join(out, f)), `${f} missing`);
      assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), `${f}: content differs`);
      assert.equal(Math.floor(statSync(join(out, f)).mtimeMs / 1000), Math.floor(T_MTIME / 1000), `${f}: mtime`);
    }
    for (const [name, data] of compressed)
      assert.ok(readFileSync(join(out, name)).equals(data), `${name}: LZNT1 content differs`);
    assert.equal(
      statSync(join(out, 'hardlink.json')).ino,
      statSync(join(out, 'Program Files/Some App/settings.json')).ino,
    );
    assert.equal(readlinkSync(join(out, 'rel-link')), 'Program Files/Some App/settings.json');
    assert.equal(readlinkSync(join(out, 'junction')), JUNCTION_TARGET);
    assert.ok(lstatSync(join(out, 'dir-link')).isSymbolicLink());
    assert.equal(readFileSync(join(out, `with-stream.txt:${ADS_NAME}`), 'utf8'), ADS_DATA);
    for (let i = 1; i <= 14; i++)
      assert.ok(readFileSync(join(out, `many-streams.txt:stream${i}`)).equals(manyStreamData(i)));
    assert.equal(r.streams, 16);
    // without --streams only the unnamed stream is written
    const out2 = join(tmp.path, 'out2');
    const r2 = expectOk(
      run(['get', id, '--disk', '1', '--partition', '3', '/with-stream.txt', '/big.bin', '--target', out2, '--json']),
    );
    assert.equal(r2.files, 2);
    assert.ok(!existsSync(join(out2, `with-stream.txt:${ADS_NAME}`)));
    assert.ok(readFileSync(join(out2, 'big.bin')).equals(readFileSync(join(src, 'big.bin'))));
  });
});
