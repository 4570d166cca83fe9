import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BufferReader, openFilesystem, type FsNode, type GuestFs } from '../src/fs/index.js';
import { COOPERATE_EVERY } from '../src/shared/index.js';
import { tempDir } from './helpers/cli.js';
import { HUGE_DIR_ENTRIES, HUGE_DIR_FILESYSTEMS, hugeDirName, makeHugeDirImage } from './helpers/huge-dir-images.js';

const asRoot = process.getuid?.() === 0;

/** Runs `work` and counts the turns the event loop made meanwhile (a setImmediate chain). */
async function loopTurnsDuring<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let done = false;
  let turns = 0;
  const spin = () => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const value = await work();
  done = true;
  return { value, turns };
}

/**
 * Issue 21, item 10: listing a 20,000-entry directory of a real ext4, FAT32, NTFS and XFS image does not hold the
 * event loop. The image is read from memory (BufferReader: no I/O at all), so without the cooperative yields the whole
 * listing runs in promise microtasks and the event loop makes no turn until it is done (0 turns); with them it turns
 * about once every COOPERATE_EVERY entries. Counts, not times.
 */
describe(`listing a ${HUGE_DIR_ENTRIES}-entry guest directory yields to the event loop`, {
  skip: !asRoot && 'needs root (loop mounts for FAT and XFS)',
}, () => {
  const tmp = tempDir('coffer-huge-dir-');
  after(() => tmp.cleanup());

  for (const kind of HUGE_DIR_FILESYSTEMS) {
    test(`${kind}: the event loop turns while /big is listed; every entry is listed`, {
      timeout: 300_000,
    }, async () => {
      const img = makeHugeDirImage(kind, join(tmp.path, `${kind}.img`), tmp.path);
      const fs: GuestFs = await openFilesystem(new BufferReader(img));
      const root = await fs.root();
      const big = (await fs.list(root)).find((e) => e.name === 'big');
      assert.ok(big && big.type === 'dir', `${kind}: /big is a directory`);
      const { value, turns } = await loopTurnsDuring(() => fs.list(big as FsNode));
      const names = value.map((e) => e.name).sort();
      assert.equal(names.length, HUGE_DIR_ENTRIES);
      assert.equal(names[0], hugeDirName(0));
      assert.equal(names.at(-1), hugeDirName(HUGE_DIR_ENTRIES - 1));
      assert.ok(value.every((e) => !e.error && e.type === 'file'));
      // at least one turn per 2 x COOPERATE_EVERY entries (the reader also yields per directory block / index node)
      assert.ok(
        turns >= HUGE_DIR_ENTRIES / COOPERATE_EVERY / 2,
        `${kind}: the event loop turned ${turns} times while ${HUGE_DIR_ENTRIES} entries were listed`,
      );
    });
  }
});
