import { CofferError, type Op } from '../shared/index.js';

/**
 * Read-only replay of an ext3/ext4 journal (jbd2), as e2fsck would do it, without writing anything: the result is a
 * map from filesystem block to the journal block holding its newest committed copy. A crash-consistent backup of a
 * mounted filesystem has metadata that is committed in the journal but not yet written in place (new files,
 * directories); reading through this map sees them. Everything is bounded by the journal's length; transactions
 * without a commit block are ignored; revoked blocks are not replayed. Checksums are not verified (the replayed
 * blocks are as untrusted as the rest of the guest filesystem, and every reader checks what it reads).
 */

const JBD2_MAGIC = 0xc03b3998;
const DESCRIPTOR = 1;
const COMMIT = 2;
const SB_V1 = 3;
const SB_V2 = 4;
const REVOKE = 5;
const INCOMPAT_REVOKE = 0x1;
const INCOMPAT_64BIT = 0x2;
const INCOMPAT_ASYNC_COMMIT = 0x4;
const INCOMPAT_CSUM_V2 = 0x8;
const INCOMPAT_CSUM_V3 = 0x10;
const INCOMPAT_FAST_COMMIT = 0x20;
const KNOWN_INCOMPAT =
  INCOMPAT_REVOKE | INCOMPAT_64BIT | INCOMPAT_ASYNC_COMMIT | INCOMPAT_CSUM_V2 | INCOMPAT_CSUM_V3 | INCOMPAT_FAST_COMMIT;
const FLAG_ESCAPE = 1;
const FLAG_SAME_UUID = 2;
const FLAG_LAST_TAG = 8;

export interface JournalBlock {
  /** journal-relative block holding the data */
  journalBlock: number;
  /** the data's first 4 bytes were the jbd2 magic and were zeroed in the log */
  escaped: boolean;
}

export interface JournalReplay {
  /** filesystem block -> newest committed copy in the journal */
  blocks: Map<number, JournalBlock>;
  transactions: number;
}

function corrupt(msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `ext journal: ${msg}`);
}

/**
 * Scans the log. `read(i)` returns journal block i (0 = the journal superblock); `fsBlocks` bounds the target blocks.
 * Returns undefined when the journal is clean (nothing to replay).
 */
export async function scanJournal(
  read: (i: number, op?: Op) => Promise<Buffer>,
  journalBlocks: number,
  fsBlocks: number,
  op?: Op,
): Promise<JournalReplay | undefined> {
  const sb = await read(0, op);
  if (sb.readUInt32BE(0) !== JBD2_MAGIC) throw corrupt('bad journal superblock magic');
  const type = sb.readUInt32BE(4);
  if (type !== SB_V1 && type !== SB_V2) throw corrupt(`journal superblock of type ${type}`);
  const blockBytes = sb.readUInt32BE(12);
  const maxlen = sb.readUInt32BE(16);
  const first = sb.readUInt32BE(20);
  let seq = sb.readUInt32BE(24);
  const start = sb.readUInt32BE(28);
  if (start === 0) return undefined; // clean
  if (blockBytes !== sb.length)
    throw corrupt(`journal block size ${blockBytes} differs from the filesystem's ${sb.length}`);
  if (maxlen > journalBlocks || first < 1 || first >= maxlen || start < first || start >= maxlen)
    throw corrupt(
      `journal bounds (first ${first}, start ${start}, length ${maxlen}) do not fit its ${journalBlocks} blocks`,
    );
  const incompat = type === SB_V2 ? sb.readUInt32BE(40) : 0;
  if (incompat & ~KNOWN_INCOMPAT)
    throw new CofferError(
      'FS_UNSUPPORTED',
      `ext journal: unknown incompatible journal features 0x${(incompat & ~KNOWN_INCOMPAT).toString(16)}`,
    );
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const csum3 = (incompat & INCOMPAT_CSUM_V3) !== 0;
  const csum2 = (incompat & INCOMPAT_CSUM_V2) !== 0;
  const tagBytes = csum3 ? 16 : 12 + (csum2 ? 2 : 0) - (is64 ? 0 : 4);
  const tailBytes = csum2 || csum3 ? 4 : 0;

  const next = (b: number) => (b + 1 >= maxlen ? first : b + 1);
  // pass 1: the committed transactions, their tags and their revoke records
  interface Tx {
    seq: number;
    tags: { fsBlock: number; journalBlock: number; escaped: boolean }[];
  }
  const done: Tx[] = [];
  const revoked = new Map<number, number>(); // fs block -> newest revoking transaction
  let pos = start;
  let cur: Tx = { seq, tags: [] };
  const pendingRevokes: number[] = [];
  for (let steps = 0; steps < maxlen; steps++) {
    op?.signal?.throwIfAborted();
    const b = await read(pos, op);
    if (b.readUInt32BE(0) !== JBD2_MAGIC || b.readUInt32BE(8) !== seq) break;
    const btype = b.readUInt32BE(4);
    if (btype === DESCRIPTOR) {
      let p = 12;
      let jb = pos;
      while (p + tagBytes <= blockBytes - tailBytes) {
        const lo = b.readUInt32BE(p);
        const flags = csum3 ? b.readUInt32BE(p + 4) : b.readUInt16BE(p + 6);
        const hi = is64 ? b.readUInt32BE(p + 8) : 0;
        jb = next(jb);
        steps++;
        if (steps >= maxlen) throw corrupt('a descriptor block runs past the length of the journal');
        const fsBlock = hi * 2 ** 32 + lo;
        if (fsBlock >= fsBlocks) throw corrupt(`a logged block (${fsBlock}) lies outside the filesystem`);
        cur.tags.push({ fsBlock, journalBlock: jb, escaped: (flags & FLAG_ESCAPE) !== 0 });
        p += tagBytes + (flags & FLAG_SAME_UUID ? 0 : 16);
        if (flags & FLAG_LAST_TAG) break;
      }
      pos = next(jb);
    } else if (btype === COMMIT) {
      done.push(cur);
      for (const r of pendingRevokes.splice(0)) revoked.set(r, Math.max(revoked.get(r) ?? 0, seq));
      seq = (seq + 1) >>> 0;
      cur = { seq, tags: [] };
      pos = next(pos);
    } else if (btype === REVOKE) {
      const count = Math.min(b.readUInt32BE(12), blockBytes);
      const rec = is64 ? 8 : 4;
      for (let p = 16; p + rec <= count; p += rec)
        pendingRevokes.push(is64 ? Number(b.readBigUInt64BE(p)) : b.readUInt32BE(p));
      pos = next(pos);
    } else break;
  }
  // pass 2: newest committed copy of each block that no later (or same) transaction revoked
  const blocks = new Map<number, JournalBlock>();
  for (const tx of done) {
    for (const t of tx.tags) {
      const r = revoked.get(t.fsBlock);
      if (r !== undefined && r - tx.seq >= 0) continue;
      blocks.set(t.fsBlock, { journalBlock: t.journalBlock, escaped: t.escaped });
    }
  }
  return { blocks, transactions: done.length };
}

export function unescape(data: Buffer): void {
  data.writeUInt32BE(JBD2_MAGIC, 0);
}
