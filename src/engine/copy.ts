import { FixedIndex, type Manifest } from '../format/index.js';
import { CHUNKS_PREFIX, IdSet, baseName, chunkBlob, indexBlob, pointBlob, type Repository } from '../repository/index.js';
import { hasServerSideCopy } from '../storage/index.js';
import { CofferError, TaskWindow, type Op } from '../shared/index.js';
import type { CodecPool } from './codec-pool.js';

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
export async function copyPoints(src: Repository, dst: Repository, srcPool: CodecPool, dstPool: CodecPool, req: CopyRequest): Promise<CopyResult> {
  const started = Date.now();
  const op: Op = { signal: req.signal };
  const sameKey = src.id === dst.id && src.keys.encKey.equals(dst.keys.encKey) && src.keys.idKey.equals(dst.keys.idKey);
  if (!sameKey && src.chunkSizeBytes !== dst.chunkSizeBytes) {
    throw new CofferError('USAGE', `the repositories have different chunk sizes (${src.chunkSizeBytes} and ${dst.chunkSizeBytes}); copy needs equal chunk sizes`, {
      hint: 'create the target with `coffer init --chunk-size` equal to the source, or with `--copy-of SOURCE`',
    });
  }
  // One listing of the target's chunks instead of a request per chunk.
  const have = await listChunkIds(dst, op);
  const added = new Set<string>();
  const targetHas = (hex: string) => added.has(hex) || have.has(Buffer.from(hex, 'hex'));
  const map = sameKey ? undefined : await knownMapping(src, dst, op);
  const points: CopiedPoint[] = [];
  const serverSide = sameKey && hasServerSideCopy(dst.store) ? dst.store : undefined;

  for (const id of req.pointIds) {
    op.signal?.throwIfAborted();
    const m = await src.loadManifest(id, op);
    const r: CopiedPoint = { id, vm: m.vm.name, status: 'copied', chunksCopied: 0, chunksPresent: 0, bytesUploaded: 0, serverSide: 0 };
    if (await dst.store.stat(pointBlob(id), op)) {
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
          const mapped = map?.get(srcHex);
          if (sameKey ? targetHas(srcHex) : mapped !== undefined && targetHas(mapped)) {
            if (out) out.set(i, Buffer.from(mapped!, 'hex'));
            r.chunksPresent++;
            continue;
          }
          await window.run(async () => {
            if (sameKey) {
              const name = chunkBlob(srcHex);
              const viaService = serverSide ? await serverSide.serverSideCopyFrom(src.store, name, op) : undefined;
              if (viaService) {
                r.serverSide++;
              } else {
                const blob = await src.getChunkBlob(srcHex, op);
                await srcPool.open(Buffer.from(blob), srcHex, true); // a damaged source chunk is not copied
                if ((await dst.store.put(name, blob, op)) === 'created') r.bytesUploaded += blob.length;
              }
              added.add(srcHex);
            } else {
              const blob = await src.getChunkBlob(srcHex, op);
              const { plain } = await srcPool.open(blob, srcHex, true);
              const p = await dstPool.process(plain, true);
              if (!p.id) throw new CofferError('INTERNAL', `chunk ${srcHex} is all zeros but has an id`);
              const dstHex = p.id.toString('hex');
              out!.set(i, p.id);
              map!.set(srcHex, dstHex);
              if (!targetHas(dstHex)) {
                const sealed = p.sealed ?? (await dstPool.seal(p.data, dstHex)).sealed;
                if ((await dst.putChunkBlob(dstHex, sealed, op)) === 'created') r.bytesUploaded += sealed.length;
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
        const blob = await src.store.get(indexBlob(disk.indexId), undefined, op);
        await dst.store.put(indexBlob(disk.indexId), blob, op);
        newDisks.push(disk);
      } else {
        const indexId = await dst.putIndex(out!, op);
        newDisks.push({ ...disk, indexId });
      }
    }
    // the manifest last: the commit point of this restore point in the target
    if (sameKey) {
      await dst.store.put(pointBlob(id), await src.store.get(pointBlob(id), undefined, op), op);
    } else {
      // the same id, times, parent (history: it may name a point that was not copied) and stats; new index ids
      await dst.commitManifest({ ...m, disks: newDisks }, op);
    }
    points.push(r);
    req.onPoint?.(r);
  }
  return { mode: sameKey ? 'same-key' : 're-encrypt', points, durationMs: Date.now() - started };
}

async function listChunkIds(repo: Repository, op: Op): Promise<IdSet> {
  const parts: Buffer[] = [];
  for await (const b of repo.store.list(CHUNKS_PREFIX, op)) {
    const hex = baseName(b.name);
    if (/^[0-9a-f]{64}$/.test(hex) && b.name === chunkBlob(hex)) parts.push(Buffer.from(hex, 'hex'));
  }
  return IdSet.fromConcatenated(Buffer.concat(parts));
}

/** Source id -> target id, from restore points present in both (same point id: copied before), index by index. */
async function knownMapping(src: Repository, dst: Repository, op: Op): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  const inTarget = new Set<string>();
  for await (const id of dst.pointIds(op)) inTarget.add(id);
  for await (const id of src.pointIds(op)) {
    if (!inTarget.has(id)) continue;
    const [a, b] = await Promise.all([src.loadManifest(id, op), dst.loadManifest(id, op)]);
    for (let d = 0; d < Math.min(a.disks.length, b.disks.length); d++) {
      const [ia, ib] = await Promise.all([src.loadIndex(a.disks[d]!.indexId, op), dst.loadIndex(b.disks[d]!.indexId, op)]);
      if (ia.entryCount !== ib.entryCount) continue;
      for (let i = 0; i < ia.entryCount; i++) {
        if (!ia.isZero(i) && !ib.isZero(i)) map.set(ia.id(i).toString('hex'), ib.id(i).toString('hex'));
      }
    }
  }
  return map;
}

