import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, mkFat, sh } from '../../src/fs/testing/images.js';
import { mkXfs, withMount } from '../../src/fs/testing/xfs-lvm-images.js';

/**
 * Images with one huge directory /big (issue 21, item 10), made by the real tools: mkfs.ext4 and mkfs.xfs populated
 * through a loop mount (root; mke2fs -d takes minutes for 20,000 files), mkfs.fat + mcopy (no vfat module here),
 * mkntfs + wimapply. Entries are empty files F00000.TXT ... (8.3 names, so FAT
 * needs one slot each).
 */
export const HUGE_DIR_ENTRIES = 20_000;
export type HugeDirFs = 'ext4' | 'fat' | 'ntfs' | 'xfs';
export const HUGE_DIR_FILESYSTEMS: HugeDirFs[] = ['ext4', 'fat', 'ntfs', 'xfs'];

export const hugeDirName = (i: number) => `F${String(i).padStart(5, '0')}.TXT`;

function fill(dir: string, n: number): void {
  mkdirSync(join(dir, 'big'), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, 'big', hugeDirName(i)), '');
  writeFileSync(join(dir, 'small.txt'), 'small\n');
}

/** Makes `img` (whole-filesystem image) of `kind` with /big holding `n` empty files; returns the image's bytes. */
export function makeHugeDirImage(kind: HugeDirFs, img: string, work: string, n = HUGE_DIR_ENTRIES): Buffer {
  const src = join(work, `huge-src-${kind}`);
  if (kind === 'ext4') {
    writeFileSync(img, Buffer.alloc(0));
    sh('truncate', ['-s', String(48 * MiB), img]);
    sh('mkfs.ext4', ['-q', '-F', '-N', String(n + 1000), img]);
    withMount(img, (d) => fill(d, n));
  } else if (kind === 'ntfs') {
    fill(src, n);
    const size = 64 * MiB;
    writeFileSync(img, Buffer.alloc(0));
    sh('truncate', ['-s', String(size), img]);
    sh('mkntfs', ['-F', '-Q', '-s', '512', '-c', '4096', img]);
    const wim = join(work, `huge-${kind}.wim`);
    sh('wimcapture', [src, wim, '--compress=none', '--no-acls']);
    sh('wimapply', [wim, img, '--no-acls']);
  } else if (kind === 'fat') {
    fill(src, n);
    mkFat(img, 32, undefined, 64 * MiB);
    // mcopy of 20,000 files takes tens of seconds on a busy machine: more than sh() waits
    const r = spawnSync('mcopy', ['-s', '-i', img, join(src, 'big'), join(src, 'small.txt'), '::/'], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (r.status !== 0) throw new Error(`mcopy failed (${r.status}): ${r.stderr}`);
  } else {
    mkXfs(img, 64 * MiB);
    withMount(img, (d) => fill(d, n));
  }
  return readFileSync(img);
}
