import { CofferError, type Op } from '../shared/index.js';
import { crc32Be, crc32c } from './crc32.js';

/**
 * Read-only replay of an ext3/ext4 journal (jbd2), with the semantics of e2fsprogs' recovery.c (the kernel's
 * fs/jbd2/recovery.c) but without writing anything: the result maps each filesystem block to the journal block holding
 * the copy e2fsck would leave in place. docs/DESIGN.md §Journal replay states the rules:
 * - the journal superblock is checked as e2fsck_journal_load does (csum v2 and v3 exclusive, neither with the v1
 *   COMPAT_CHECKSUM, checksum type crc32c, its crc32c over 1024 bytes, block size, bounds): a failure means e2fsck
 *   would not replay (it offers to clear the journal), so nothing is replayed;
 * - PASS_SCAN: from s_start with s_sequence, blocks of the expected sequence; a descriptor or revoke block whose tail
 *   checksum fails (v2/v3) marks the transaction: at its commit block, a commit time not older than the last good one
 *   fails the whole recovery (nothing replayed), an older one is stale data that ends the log there; a commit block
 *   whose checksum fails (v2/v3 crc32c of the block, v1 crc32_be over descriptor and data blocks) ends the log before
 *   that transaction (with async_commit the scan goes on, as the kernel's does);
 * - PASS_REVOKE: revoke records of the transactions before the end (a record count past the block is a failed
 *   recovery);
 * - PASS_REPLAY: each tag's block in transaction order, unless revoked by the same or a later transaction; a block
 *   whose tag checksum fails (v2: 16 bits, v3: 32 bits of crc32c(seed, sequence, data)) is skipped and reported, the
 *   older copy stays.
 */

const JBD2_MAGIC = 0xc03b3998;
const DESCRIPTOR = 1;
const COMMIT = 2;
const SB_V1 = 3;
const SB_V2 = 4;
const REVOKE = 5;
const COMPAT_CHECKSUM = 0x1;
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
const CRC32C_CHKSUM = 4;
const CRC32_CHKSUM = 1;
const CRC32_CHKSUM_SIZE = 4;
/** sizeof(journal_superblock_t): what its checksum covers */
const JSB_BYTES = 1024;

export interface JournalBlock {
  /** journal-relative block holding the data */
  journalBlock: number;
  /** the data's first 4 bytes were the jbd2 magic and were zeroed in the log */
  escaped: boolean;
}

export interface JournalReplay {
  /** filesystem block -> the copy in the journal e2fsck would write in place */
  blocks: Map<number, JournalBlock>;
  /** transactions replayed */
  transactions: number;
  /** which checksums the journal carries and were verified: 'none', 'v1' (crc32 of commits), 'v2', 'v3' */
  checksums: 'none' | 'v1' | 'v2' | 'v3';
  /** what was not replayed and why (e2fsck skips the same, with an error) */
  skipped: string[];
}

function corrupt(msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `ext journal: ${msg}`);
}

interface Tag {
  fsBlock: number;
  journalBlock: number;
  escaped: boolean;
  /** the tag's stored checksum (v2: 16 bits, v3: 32 bits) */
  csum: number;
}
interface Tx {
  seq: number;
  tags: Tag[];
  revokes: number[];
  /** a revoke block whose record count is impossible (scan_revoke_records' -EINVAL) */
  revokeError?: string;
}

/**
 * Scans the log. `read(i)` returns journal block i (0 = the journal superblock); `fsBlocks` bounds the target blocks.
 * Returns undefined when the journal is clean (nothing to replay). Throws FS_CORRUPT when e2fsck would replay nothing
 * (a bad journal superblock, a failed recovery); the caller reads the filesystem as it is in place and says so.
 */
export async function scanJournal(
  read: (i: number, op?: Op) => Promise<Buffer>,
  journalBlocks: number,
  fsBlocks: number,
  op?: Op,
): Promise<JournalReplay | undefined> {
  const sb = await read(0, op);
  if (sb.length < JSB_BYTES) throw corrupt(`journal block of ${sb.length} bytes`);
  if (sb.readUInt32BE(0) !== JBD2_MAGIC) throw corrupt('bad journal superblock magic');
  const type = sb.readUInt32BE(4);
  if (type !== SB_V1 && type !== SB_V2) throw corrupt(`journal superblock of type ${type}`);
  const blockBytes = sb.readUInt32BE(12);
  let maxlen = sb.readUInt32BE(16);
  const first = sb.readUInt32BE(20);
  const sbSeq = sb.readUInt32BE(24);
  const start = sb.readUInt32BE(28);
  const compat = type === SB_V2 ? sb.readUInt32BE(36) : 0;
  const incompat = type === SB_V2 ? sb.readUInt32BE(40) : 0;
  const csum3 = (incompat & INCOMPAT_CSUM_V3) !== 0;
  const csum2 = (incompat & INCOMPAT_CSUM_V2) !== 0;
  const v23 = csum2 || csum3;
  const v1 = (compat & COMPAT_CHECKSUM) !== 0;
  // e2fsck_journal_load: these make the journal superblock corrupt, and e2fsck replays nothing
  if (csum2 && csum3) throw corrupt('the journal claims both checksum v2 and v3');
  if (v23 && v1) throw corrupt('the journal claims checksum v1 together with v2/v3');
  if (v23) {
    if (sb[0x50] !== CRC32C_CHKSUM) throw corrupt(`journal checksum type ${sb[0x50]} (only crc32c, 4, exists)`);
    const stored = sb.readUInt32BE(0xfc);
    const c = Buffer.from(sb.subarray(0, JSB_BYTES));
    c.writeUInt32BE(0, 0xfc);
    if (crc32c(0xffffffff, c) !== stored) throw corrupt('the journal superblock fails its checksum');
  }
  if (start === 0) return undefined; // clean
  if (blockBytes !== sb.length)
    throw corrupt(`journal block size ${blockBytes} differs from the filesystem's ${sb.length}`);
  if (maxlen > journalBlocks) throw corrupt(`journal length ${maxlen} exceeds its inode's ${journalBlocks} blocks`);
  if (maxlen < journalBlocks) journalBlocks = maxlen;
  if (incompat & ~KNOWN_INCOMPAT)
    throw new CofferError(
      'FS_UNSUPPORTED',
      `ext journal: unknown incompatible journal features 0x${(incompat & ~KNOWN_INCOMPAT).toString(16)}`,
    );
  // fast-commit blocks sit after the log proper (j_last = maxlen - fc blocks; 256 when the field is 0)
  if (incompat & INCOMPAT_FAST_COMMIT) maxlen -= sb.readUInt32BE(0x54) || 256;
  if (first < 1 || first >= maxlen || start < first || start >= maxlen)
    throw corrupt(
      `journal bounds (first ${first}, start ${start}, length ${maxlen}) do not fit its ${journalBlocks} blocks`,
    );
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const asyncCommit = (incompat & INCOMPAT_ASYNC_COMMIT) !== 0;
  const tagBytes = csum3 ? 16 : 12 + (csum2 ? 2 : 0) - (is64 ? 0 : 4);
  const tailBytes = v23 ? 4 : 0;
  const seed = v23 ? crc32c(0xffffffff, sb.subarray(0x30, 0x40)) : 0;
  const checksums = csum3 ? 'v3' : csum2 ? 'v2' : v1 ? 'v1' : 'none';
  const skipped: string[] = [];

  const next = (b: number) => (b + 1 >= maxlen ? first : b + 1);
  /** the tail checksum of a descriptor or revoke block (jbd2_descriptor_block_csum_verify) */
  const tailOk = (b: Buffer) => {
    if (!v23) return true;
    const c = Buffer.from(b);
    c.writeUInt32BE(0, blockBytes - 4);
    return crc32c(seed, c) === b.readUInt32BE(blockBytes - 4);
  };
  const commitOk = (b: Buffer) => {
    if (!v23) return true;
    const c = Buffer.from(b);
    c.writeUInt32BE(0, 16);
    return crc32c(seed, c) === b.readUInt32BE(16);
  };

  // PASS_SCAN
  const txs: Tx[] = [];
  let cur: Tx = { seq: sbSeq, tags: [], revokes: [] };
  let nextId = sbSeq;
  let pos = start;
  let endId: number | undefined;
  let needCheck = false;
  let lastTime = 0n;
  let crcSum = 0xffffffff;
  for (let steps = 0; steps < maxlen; steps++) {
    op?.signal?.throwIfAborted();
    const b = await read(pos, op);
    pos = next(pos);
    if (b.readUInt32BE(0) !== JBD2_MAGIC || b.readUInt32BE(8) !== nextId) break;
    const btype = b.readUInt32BE(4);
    if (btype === DESCRIPTOR) {
      if (!tailOk(b)) needCheck = true;
      const sum = v1 && !needCheck && endId === undefined;
      if (sum) crcSum = crc32Be(crcSum, b);
      for (let p = 12; p + tagBytes <= blockBytes - tailBytes; ) {
        const lo = b.readUInt32BE(p);
        const flags = csum3 ? b.readUInt32BE(p + 4) : b.readUInt16BE(p + 6);
        const hi = is64 ? b.readUInt32BE(p + 8) : 0;
        const csum = csum3 ? b.readUInt32BE(p + 12) : b.readUInt16BE(p + 4);
        if (++steps >= maxlen) throw corrupt('a descriptor block runs past the length of the journal');
        cur.tags.push({ fsBlock: hi * 2 ** 32 + lo, journalBlock: pos, escaped: (flags & FLAG_ESCAPE) !== 0, csum });
        if (sum) crcSum = crc32Be(crcSum, await read(pos, op));
        pos = next(pos);
        p += tagBytes + (flags & FLAG_SAME_UUID ? 0 : 16);
        if (flags & FLAG_LAST_TAG) break;
      }
    } else if (btype === COMMIT) {
      const commitTime = b.readBigUInt64BE(48);
      if (needCheck) {
        if (commitTime >= lastTime)
          throw corrupt(
            `transaction ${nextId} has a descriptor or revoke block that fails its checksum (e2fsck replays nothing)`,
          );
        skipped.push(
          `transaction ${nextId} and later: a block fails its checksum and its commit time goes back (stale log)`,
        );
        break;
      }
      let bad = false;
      if (v1) {
        if (endId !== undefined) break;
        const found = b.readUInt32BE(16);
        const ok =
          (crcSum === found && b[12] === CRC32_CHKSUM && b[13] === CRC32_CHKSUM_SIZE) ||
          (b[12] === 0 && b[13] === 0 && found === 0);
        if (ok) crcSum = 0xffffffff;
        else bad = true;
      }
      if (!bad && !commitOk(b)) bad = true;
      if (bad) {
        if (commitTime < lastTime) {
          skipped.push(
            `transaction ${nextId} and later: its commit block fails its checksum and its ` +
              `commit time goes back (stale log)`,
          );
          break;
        }
        endId = nextId;
        skipped.push(`transaction ${nextId}${asyncCommit ? '' : ' and later'}: its commit block fails its checksum`);
        if (!asyncCommit) break;
      }
      lastTime = commitTime;
      txs.push(cur);
      nextId = (nextId + 1) >>> 0;
      cur = { seq: nextId, tags: [], revokes: [] };
    } else if (btype === REVOKE) {
      if (!tailOk(b)) needCheck = true;
      const count = b.readUInt32BE(12);
      if (count > blockBytes - tailBytes)
        cur.revokeError ??= `a revoke block of transaction ${nextId} claims ${count} bytes`;
      else {
        const rec = is64 ? 8 : 4;
        for (let p = 16; p + rec <= count; p += rec)
          cur.revokes.push(is64 ? Number(b.readBigUInt64BE(p)) : b.readUInt32BE(p));
      }
    } else break;
  }
  const end = endId ?? nextId;
  const replayed = txs.slice(0, (end - sbSeq) >>> 0);

  // PASS_REVOKE: fs block -> index of the newest transaction that revoked it
  const revoked = new Map<number, number>();
  for (const [i, tx] of replayed.entries()) {
    if (tx.revokeError) throw corrupt(tx.revokeError);
    for (const r of tx.revokes) revoked.set(r, Math.max(revoked.get(r) ?? 0, i));
  }
  // PASS_REPLAY
  const blocks = new Map<number, JournalBlock>();
  const seqBuf = Buffer.alloc(4);
  for (const [i, tx] of replayed.entries()) {
    for (const t of tx.tags) {
      op?.signal?.throwIfAborted();
      const r = revoked.get(t.fsBlock);
      if (r !== undefined && r >= i) continue;
      if (v23) {
        seqBuf.writeUInt32BE(tx.seq);
        const c = crc32c(crc32c(seed, seqBuf), await read(t.journalBlock, op));
        if ((csum3 ? c : c & 0xffff) !== t.csum) {
          skipped.push(
            `block ${t.fsBlock} of transaction ${tx.seq} (journal block ${t.journalBlock}): its tag checksum fails`,
          );
          continue;
        }
      }
      if (t.fsBlock >= fsBlocks) {
        skipped.push(`block ${t.fsBlock} of transaction ${tx.seq}: outside the filesystem (${fsBlocks} blocks)`);
        continue;
      }
      blocks.set(t.fsBlock, { journalBlock: t.journalBlock, escaped: t.escaped });
    }
  }
  return { blocks, transactions: replayed.length, checksums, skipped };
}

export function unescapeJournalBlock(data: Buffer): void {
  data.writeUInt32BE(JBD2_MAGIC, 0);
}
