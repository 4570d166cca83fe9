import { createHash, randomBytes } from 'node:crypto';
import type { BlobStore } from '../storage/index.js';
import { CofferError, type BlobName, type Op } from '../shared/index.js';
import { IdSet } from './id-set.js';
import { CONDEMNED_PREFIX, RESCUE_PREFIX, condemnedBlob, rescueBlob } from './layout.js';

/**
 * Sets of object ids kept by garbage collection (FORMAT.md §11): a condemned generation (objects found unreferenced,
 * deleted by a later sweep) and a writer's rescue list (condemned objects a running writer uses).
 * Plaintext: magic (8) | chunk count u32 LE | index count u32 LE | chunk ids (sorted) | index ids (sorted) | SHA-256.
 */
export interface GcIdSets {
  chunks: IdSet;
  indexes: IdSet;
}

const MAGIC = { condemned: 'CFGCv001', rescue: 'CFRSv001' } as const;
type Kind = keyof typeof MAGIC;
const HEADER = 16;

export function encodeGcSets(kind: Kind, s: GcIdSets): Buffer {
  const body = Buffer.alloc(HEADER);
  body.write(MAGIC[kind], 0, 'ascii');
  body.writeUInt32LE(s.chunks.size, 8);
  body.writeUInt32LE(s.indexes.size, 12);
  const all = Buffer.concat([body, s.chunks.bytes, s.indexes.bytes]);
  return Buffer.concat([all, createHash('sha256').update(all).digest()]);
}

export function decodeGcSets(kind: Kind, name: string, bytes: Buffer): GcIdSets {
  const bad = (why: string) => new CofferError('CORRUPT', `${kind} set ${name}: ${why}`);
  if (bytes.length < HEADER + 32 || bytes.toString('ascii', 0, 8) !== MAGIC[kind]) throw bad('bad magic or too short');
  const c = bytes.readUInt32LE(8);
  const i = bytes.readUInt32LE(12);
  if (bytes.length !== HEADER + 32 * (c + i) + 32) throw bad('length does not match its counts');
  const body = bytes.subarray(0, bytes.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(bytes.subarray(bytes.length - 32))
  )
    throw bad('checksum mismatch');
  // re-sorted on load: a set is never trusted to be sorted
  return {
    chunks: IdSet.fromConcatenated(Buffer.from(bytes.subarray(HEADER, HEADER + 32 * c))),
    indexes: IdSet.fromConcatenated(Buffer.from(bytes.subarray(HEADER + 32 * c, HEADER + 32 * (c + i)))),
  };
}

export async function listCondemned(store: BlobStore, op?: Op): Promise<BlobName[]> {
  const out: BlobName[] = [];
  for await (const b of store.list(CONDEMNED_PREFIX, op))
    if (/^gc\/condemned\/\d{15}-[0-9a-f]{8}$/.test(b.name)) out.push(b.name);
  return out.sort();
}

export async function writeCondemned(store: BlobStore, sets: GcIdSets, now = Date.now(), op?: Op): Promise<BlobName> {
  const name = condemnedBlob(now, randomBytes(4).toString('hex'));
  await store.put(name, encodeGcSets('condemned', sets), op);
  return name;
}

export async function readGcSets(store: BlobStore, kind: Kind, name: BlobName, op?: Op): Promise<GcIdSets> {
  return decodeGcSets(kind, name, await store.get(name, undefined, op));
}

export async function writeRescue(
  store: BlobStore,
  holder: string,
  sets: GcIdSets,
  now = Date.now(),
  op?: Op,
): Promise<BlobName> {
  const name = rescueBlob(holder, now, randomBytes(4).toString('hex'));
  await store.put(name, encodeGcSets('rescue', sets), op);
  return name;
}

/** Rescue blobs: name and the holder (lease holder id) that wrote it. */
export async function listRescues(store: BlobStore, op?: Op): Promise<{ name: BlobName; holder: string }[]> {
  const out: { name: BlobName; holder: string }[] = [];
  for await (const b of store.list(RESCUE_PREFIX, op)) {
    const m = /^gc\/rescue\/([0-9a-f]{16})\/\d{15}-[0-9a-f]{8}$/.exec(b.name);
    if (m) out.push({ name: b.name, holder: m[1]! });
  }
  return out;
}
