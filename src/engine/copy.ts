import { FixedIndex, type Manifest } from '../format/index.js';
import type { Lease, Repository } from '../repository/index.js';
import { CofferError, TaskWindow, asChunkId, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';
import { GcGuard } from './gc-guard.js';

export interface CopyRequest extends Op {
  /** restore point ids in the source, copied oldest first */
  pointIds: string[];
  /** chunks in flight (default 8) */
  window?: number;
  onProgress?: (p: CopyProgress) => void;
  onPoint?: (r: CopiedPoint) => void;
}

export interface CopyProgress {
  point: string;
  chunksDone: number;
  chunksTotal: number;
}

export interface CopiedPoint {
  id: string;
  vm: string;
  /** 'copied': committed now; 'present': the target had it already (a rerun) */
  status: 'copied' | 'present';
  chunksCopied: number;
  chunksPresent: number;
  bytesUploaded: number;
  serverSide: number;
}

export interface CopyResult {
  /** 'same-key': blobs copied as they are; 're-encrypt': decrypted, re-keyed, re-sealed for the target */
  mode: 'same-key' | 're-encrypt';
  points: CopiedPoint[];
  /**
   * chunks and indexes of the target that garbage collection had condemned and this copy rescued (DESIGN.md §Garbage
   * collection)
   */
  gcRescued: number;
  durationMs: number;
}

/**
 * Copies restore points from one repository to another (DESIGN.md §Backup copy). Resumable: chunks first, then
 * indexes, the manifest last (the commit point); a rerun skips points the target has, and chunks it has.
 *
 * - Same key (the target was created with `init --copy-of SOURCE`: same id and master key, so the same chunk ids and
 *   ciphertexts are valid in both): blobs are copied unchanged, after checking that each chunk decrypts and hashes
 *   to its id; between two Azure accounts the service copies them itself (Copy Blob From URL with a read SAS).
 * - Other keys: chunk ids are keyed hashes and differ. Each chunk is read, decrypted, checked against its source id,
 *   hashed and sealed with the target's keys; the index is rebuilt with the target ids. Source-to-target ids of
 *   chunks copied before are known from points present in both (their indexes, position by position), so chunks
 *   the target already has are not downloaded again.
 */
export async function copyPoints(
  src: Repository,
  dst: Repository,
  srcPool: CodecPool,
  dstPool: CodecPool,
  req: CopyRequest,
): Promise<CopyResult> {
  const started = Date.now();
  const op: Op = { signal: req.signal };
  const sameKey = src.sharesKeysWith(dst);
  if (!sameKey && src.chunkSizeBytes !== dst.chunkSizeBytes) {
    throw new CofferError(
      'USAGE',
      `the repositories have different chunk sizes (${src.chunkSizeBytes} and ${dst.chunkSizeBytes}); copy needs ` +
        `equal chunk sizes`,
      {
        hint: 'create the target with `coffer init --chunk-size` equal to the source, or with `--copy-of SOURCE`',
      },
    );
  }
  // Copy writes into the target like a backup: it holds the target's lease of each VM it copies points of (all taken
  // at the start, in name order, for the whole run) and follows the GC protocol (DESIGN.md §Garbage collection).
  const manifests = new Map<string, Manifest>();
  for (const id of req.pointIds) {
    op.signal?.throwIfAborted();
    manifests.set(id, await src.loadManifest(id, op));
  }
  const vms = new Set([...manifests.values()].map((m) => m.vm.name));
  const leases: Lease[] = [];
  let guard: GcGuard | undefined;
  try {
    for (const vm of [...vms].sort()) leases.push(await dst.acquireLease(dst.vmScope(vm), `copy of VM ${vm}`));
    // W2 after the leases and before any look at the target's chunks: what the listing below shows and no loaded
    // generation condemns cannot be deleted while the leases live (a later generation is deferred until we finish)
    if (leases.length > 0) guard = await GcGuard.open(dst, leases, op);
    else
      return { mode: sameKey ? 'same-key' : 're-encrypt', points: [], gcRescued: 0, durationMs: Date.now() - started };
    const points = await copyUnderLeases(src, dst, srcPool, dstPool, req, op, sameKey, manifests, leases, guard);
    return {
      mode: sameKey ? 'same-key' : 're-encrypt',
      points,
      gcRescued: guard.rescuedCount,
      durationMs: Date.now() - started,
    };
  } finally {
    await guard?.close();
    for (const l of leases.reverse()) await l.release();
  }
}

async function copyUnderLeases(
  src: Repository,
  dst: Repository,
  srcPool: CodecPool,
  dstPool: CodecPool,
  req: CopyRequest,
  op: Op,
  sameKey: boolean,
  manifests: Map<string, Manifest>,
  leases: Lease[],
  guard: GcGuard,
): Promise<CopiedPoint[]> {
  const checkLeases = () => {
    for (const l of leases) l.check();
  };
  // One listing of the target's chunks instead of a request per chunk.
  const have = await dst.chunks.listIds(op);
  const added = new Set<string>(); // stored by this run, or found after a rescue: safe until the commit
  const lost = new Set<string>(); // in the listing, but gone when looked at after a rescue (a sweep deleted it)
  const targetHas = (hex: string) => added.has(hex) || (!lost.has(hex) && have.has(Buffer.from(hex, 'hex')));
  const condemned = (hex: string) => guard.isCondemnedChunk(Buffer.from(hex, 'hex'));
  /**
   * W3 for a chunk a generation we loaded condemns: rescue it, then look at the store (the listing may predate a
   * sweep).
   */
  const rescueChunk = async (hex: string): Promise<void> => {
    if (added.has(hex)) return;
    await guard.rescue('chunk', Buffer.from(hex, 'hex'), op);
    if (await dst.chunks.has(asChunkId(hex), op)) added.add(hex);
    else lost.add(hex);
  };
  const map = sameKey ? undefined : await knownMapping(src, dst, op);
  const points: CopiedPoint[] = [];
  const serverSide = sameKey && dst.chunks.copiesServerSide;
  const srcChunks = src.chunksVia(srcPool);
  const dstChunks = dst.chunksVia(dstPool);

  for (const id of req.pointIds) {
    op.signal?.throwIfAborted();
    const m = manifests.get(id)!;
    const r: CopiedPoint = {
      id,
      vm: m.vm.name,
      status: 'copied',
      chunksCopied: 0,
      chunksPresent: 0,
      bytesUploaded: 0,
      serverSide: 0,
    };
    if (await dst.hasPoint(id, op)) {
      r.status = 'present';
      points.push(r);
      req.onPoint?.(r);
      continue;
    }
    const newDisks: Manifest['disks'] = [];
    for (const disk of m.disks) {
      const index = await src.loadIndex(disk.indexId, op);
      const out = sameKey ? undefined : FixedIndex.create(index.chunkSizeBytes, index.diskSizeBytes);
      const window = new TaskWindow(req.window ?? 8);
      let done = 0;
      try {
        for (let i = 0; i < index.entryCount; i++) {
          if (index.isZero(i)) continue;
          const srcHex = index.id(i).toString('hex');
          const knownHex = sameKey ? srcHex : map!.get(srcHex);
          if (knownHex !== undefined && targetHas(knownHex) && (added.has(knownHex) || !condemned(knownHex))) {
            if (out) out.set(i, Buffer.from(knownHex, 'hex'));
            r.chunksPresent++;
            continue;
          }
          await window.run(async () => {
            if (knownHex !== undefined && condemned(knownHex)) {
              await rescueChunk(knownHex);
              if (targetHas(knownHex)) {
                // rescued and still there: it stays until our manifest references it
                if (out) out.set(i, Buffer.from(knownHex, 'hex'));
                r.chunksPresent++;
                return;
              }
            }
            if (sameKey) {
              // a condemned id was rescued above: this put (or server-side copy) comes after the rescue
              const id = asChunkId(srcHex);
              const viaService = serverSide ? await dst.chunks.copyFrom(src.chunks, id, op) : undefined;
              if (viaService) {
                r.serverSide++;
              } else {
                const blob = await srcChunks.getSealedChecked(id, op); // a damaged source chunk is not copied
                if ((await dst.chunks.putSealed(id, blob, op)) === 'created') r.bytesUploaded += blob.length;
              }
              added.add(srcHex);
            } else {
              const { plain } = await srcChunks.get(asChunkId(srcHex), { checkId: true }, op);
              const p = await dstPool.process(plain, true);
              if (!p.id) throw new CofferError('INTERNAL', `chunk ${srcHex} is all zeros but has an id`);
              const dstHex = p.id.toString('hex');
              out!.set(i, p.id);
              map!.set(srcHex, dstHex);
              if (condemned(dstHex)) await rescueChunk(dstHex);
              if (!targetHas(dstHex)) {
                const put = await dstChunks.put(
                  asChunkId(dstHex),
                  { plain: p.data, ...(p.sealed ? { sealed: p.sealed } : {}) },
                  op,
                );
                if (put.stored === 'created') r.bytesUploaded += put.sizeBytes;
                added.add(dstHex);
              }
            }
            r.chunksCopied++;
            req.onProgress?.({ point: id, chunksDone: ++done, chunksTotal: index.entryCount });
          });
        }
        await window.drain();
      } catch (e) {
        await window.settle();
        throw e;
      }
      if (sameKey) {
        if (guard.isCondemnedIndex(disk.indexId)) await guard.rescue('index', Buffer.from(disk.indexId, 'hex'), op);
        await dst.copyIndexFrom(src, disk.indexId, op);
        newDisks.push(disk);
      } else {
        const indexHex = dst.indexId(out!.bytes);
        if (guard.isCondemnedIndex(indexHex)) await guard.rescue('index', Buffer.from(indexHex, 'hex'), op);
        const indexId = await dst.putIndex(out!, op);
        newDisks.push({ ...disk, indexId });
      }
    }
    // the manifest last: the commit point of this restore point in the target
    op.signal?.throwIfAborted();
    checkLeases();
    if (sameKey) {
      await dst.copyPointFrom(src, id, op);
    } else {
      // the same id, times, parent (history: it may name a point that was not copied) and stats; new index ids
      await dst.commitManifest({ ...m, disks: newDisks }, op);
    }
    points.push(r);
    req.onPoint?.(r);
  }
  return points;
}

/** Source id -> target id, from restore points present in both (same point id: copied before), index by index. */
async function knownMapping(src: Repository, dst: Repository, op: Op): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  const inTarget = new Set<string>();
  for await (const id of dst.pointIds(op)) inTarget.add(id);
  for await (const id of src.pointIds(op)) {
    if (!inTarget.has(id)) continue;
    // a point forgotten (and pruned) in the target meanwhile only teaches nothing; the ids it names are still valid
    // (keyed hashes of the plaintext), and whether the target still has those chunks is decided under the GC guard
    const pair = await Promise.all([src.loadManifest(id, op), dst.loadManifest(id, op)]).catch(gone);
    if (!pair) continue;
    const [a, b] = pair;
    for (let d = 0; d < Math.min(a.disks.length, b.disks.length); d++) {
      const indexes = await Promise.all([
        src.loadIndex(a.disks[d]!.indexId, op),
        dst.loadIndex(b.disks[d]!.indexId, op),
      ]).catch(gone);
      if (!indexes) continue;
      const [ia, ib] = indexes;
      if (ia.entryCount !== ib.entryCount) continue;
      for (let i = 0; i < ia.entryCount; i++) {
        if (!ia.isZero(i) && !ib.isZero(i)) map.set(ia.id(i).toString('hex'), ib.id(i).toString('hex'));
      }
    }
  }
  return map;
}

/** A manifest or index deleted meanwhile (forget, prune): undefined; anything else is thrown. */
function gone(e: unknown): undefined {
  if (e instanceof CofferError && (e.code === 'NOT_FOUND' || (e.code === 'CORRUPT' && e.details?.missing === true)))
    return undefined;
  throw e;
}
