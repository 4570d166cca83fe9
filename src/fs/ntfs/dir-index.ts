import { corrupt } from './errors.js';
import { applyFixups } from './fixup.js';
import { fileRef } from './record.js';

/** File name namespaces: DOS-only (8.3) names are hidden, POSIX, Win32 and Win32+DOS names shown. */
export const NS = { POSIX: 0, WIN32: 1, DOS: 2, WIN32_AND_DOS: 3 } as const;

export interface IndexEntry {
  record: number;
  sequence: number;
  name: string;
  namespace: number;
}

/**
 * Longest index walk: more than this many index blocks in one directory is not real (with 4 KiB blocks: 4 GiB of
 * index).
 */
export const MAX_INDEX_BLOCKS = 1 << 20;
const MAX_DEPTH = 64;

/**
 * Parses the entries of an index node (INDEX_HEADER at `hdr` of `buf`): each entry inside the node, a FILE_NAME key for
 * $I30, the last entry flagged. Returns the entries and, per entry (and for the last one), the child node's VCN.
 */
function parseNode(
  buf: Buffer,
  hdr: number,
  where: string,
): { entries: (IndexEntry | undefined)[]; children: (number | undefined)[] } {
  if (hdr + 16 > buf.length) throw corrupt(`${where}: index header outside the node`);
  const entriesOff = buf.readUInt32LE(hdr);
  const indexLen = buf.readUInt32LE(hdr + 4);
  const limit = hdr + indexLen;
  if (limit > buf.length || entriesOff < 16 || hdr + entriesOff > limit)
    throw corrupt(`${where}: index header claims entries at ${entriesOff}, ${indexLen} bytes`);
  const entries: (IndexEntry | undefined)[] = [];
  const children: (number | undefined)[] = [];
  let p = hdr + entriesOff;
  while (true) {
    if (p + 16 > limit) throw corrupt(`${where}: index entries run past the node without a last entry`);
    const len = buf.readUInt16LE(p + 8);
    const keyLen = buf.readUInt16LE(p + 10);
    const flags = buf.readUInt16LE(p + 12);
    if (len < 16 || len % 8 !== 0 || p + len > limit)
      throw corrupt(`${where}: index entry at ${p} has bad length ${len}`);
    const child = flags & 1 ? Number(buf.readBigUInt64LE(p + len - 8)) : undefined;
    if (flags & 1 && len < 24) throw corrupt(`${where}: index entry at ${p} too short for a child pointer`);
    children.push(child);
    if (flags & 2) {
      entries.push(undefined);
      break;
    }
    if (keyLen < 66 || 16 + keyLen > len - (flags & 1 ? 8 : 0))
      throw corrupt(`${where}: index key of ${keyLen} bytes in an entry of ${len}`);
    const key = buf.subarray(p + 16, p + 16 + keyLen);
    const nameLen = key[64]!;
    if (66 + nameLen * 2 > keyLen) throw corrupt(`${where}: file name of ${nameLen} characters overflows its key`);
    const ref = fileRef(buf, p);
    entries.push({
      record: ref.record,
      sequence: ref.sequence,
      name: key.subarray(66, 66 + nameLen * 2).toString('utf16le'),
      namespace: key[65]!,
    });
    p += len;
  }
  return { entries, children };
}

/**
 * All entries of a directory index in B-tree order: the root node from $INDEX_ROOT, child nodes from the index
 * allocation (`block(vcn)` gives one index block's bytes). A node visited twice (a cycle) or a tree deeper than 64 is
 * corrupt; the number of nodes is bounded by MAX_INDEX_BLOCKS.
 */
export async function walkIndex(
  root: Buffer,
  block: ((vcn: number) => Promise<Buffer>) | undefined,
  blockBytes: number,
  where: string,
  signal?: AbortSignal,
  /** called once per index node: yields to the event loop now and then (src/shared/cooperate.ts) */
  tick: () => Promise<void> | undefined = () => undefined,
): Promise<IndexEntry[]> {
  if (root.length < 32) throw corrupt(`${where}: $INDEX_ROOT of ${root.length} bytes`);
  if (root.readUInt32LE(0) !== 0x30) throw corrupt(`${where}: $I30 index does not index file names`);
  const out: IndexEntry[] = [];
  const visited = new Set<number>();
  const walk = async (buf: Buffer, hdr: number, nodeWhere: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) throw corrupt(`${where}: index tree deeper than ${MAX_DEPTH}`);
    await tick();
    const { entries, children } = parseNode(buf, hdr, nodeWhere);
    for (let i = 0; i < entries.length; i++) {
      signal?.throwIfAborted();
      const child = children[i];
      if (child !== undefined) {
        if (!block)
          throw corrupt(`${nodeWhere}: an entry points at a child node but the directory has no index allocation`);
        if (visited.has(child)) throw corrupt(`${where}: index node at VCN ${child} is reached twice (a cycle)`);
        if (visited.size >= MAX_INDEX_BLOCKS) throw corrupt(`${where}: more than ${MAX_INDEX_BLOCKS} index nodes`);
        visited.add(child);
        const b = await block(child);
        if (b.length !== blockBytes) throw corrupt(`${where}: index block at VCN ${child} cut short`);
        const bw = `${where} index block VCN ${child}`;
        applyFixups(b, 'INDX', bw);
        if (Number(b.readBigUInt64LE(16)) !== child)
          throw corrupt(`${bw}: the block says it is VCN ${b.readBigUInt64LE(16)}`);
        await walk(b, 24, bw, depth + 1);
      }
      const e = entries[i];
      if (e) out.push(e);
    }
  };
  await walk(root, 16, `${where} $INDEX_ROOT`, 0);
  return out;
}
