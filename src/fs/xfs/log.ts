import type { Op } from '../../shared/index.js';

/**
 * Is the internal XFS log clean? (docs/DESIGN.md §XFS) The log is never replayed: a filesystem backed up while mounted
 * (crash-consistent) is read as it is on disk, and the user is told. Every 512-byte log sector starts with the cycle
 * number of the pass that wrote it (a record header: right after its magic); the head is where the cycle drops. The
 * last record before the head is clean when it holds exactly one operation flagged as an unmount record.
 */

const LOG_MAGIC = 0xfeedbabe;
const UNMOUNT_TRANS = 0x20;
const BB = 512;
/** how far back from the head a record header is searched (the largest in-core log buffer is 256 KiB, plus headers) */
const MAX_BACK_SECTORS = 1024;

export type LogState = 'clean' | 'dirty' | 'unknown';

export async function logState(
  read: (sector: number, count: number, op?: Op) => Promise<Buffer>,
  sectors: number,
  op?: Op,
): Promise<LogState> {
  if (sectors < 2) return 'unknown';
  const cycleAt = async (s: number) => {
    const b = await read(s, 1, op);
    // a record header keeps its cycle after the magic
    return b.readUInt32BE(0) === LOG_MAGIC ? b.readUInt32BE(4) : b.readUInt32BE(0);
  };
  const first = await cycleAt(0);
  const last = await cycleAt(sectors - 1);
  if (first === 0) return 'unknown'; // never written
  // [0, head) carry cycle `first`, [head, end) cycle first-1; when the last sector has `first` too, the head is at the
  // end
  let head = sectors;
  if (last !== first) {
    let lo = 0;
    let hi = sectors - 1; // cycle(lo) == first, cycle(hi) != first
    for (let steps = 0; hi - lo > 1 && steps < 64; steps++) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if ((await cycleAt(mid)) === first) lo = mid;
      else hi = mid;
    }
    head = hi;
  }
  // the record header just before the head (headers are the only sectors starting with the magic: data sectors carry a
  // cycle)
  const batch = 64;
  for (let end = head; end > 0 && head - end < MAX_BACK_SECTORS; end -= batch) {
    const start = Math.max(0, end - batch);
    const buf = await read(start, end - start, op);
    for (let s = end - start - 1; s >= 0; s--) {
      const h = buf.subarray(s * BB, (s + 1) * BB);
      if (h.readUInt32BE(0) !== LOG_MAGIC) continue;
      const version = h.readUInt32BE(8);
      const numOps = h.readUInt32BE(40);
      const size = h.readUInt32BE(320);
      const hblks = version & 2 && size > 32768 ? Math.ceil(size / 32768) : 1;
      const dataSector = start + s + hblks;
      if (dataSector >= sectors || numOps !== 1) return numOps === 1 ? 'unknown' : 'dirty';
      const data = await read(dataSector, 1, op);
      // xlog_op_header: tid, len, clientid, flags (the first word of the sector is the cycle stamp, not tid)
      return data[9]! & UNMOUNT_TRANS ? 'clean' : 'dirty';
    }
  }
  return 'unknown';
}
