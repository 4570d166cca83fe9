import type { FileHandle } from 'node:fs/promises';
import { openImageFile } from '../file-source.js';
import * as path from 'node:path';
import { CofferError, type Op } from '../../shared/index.js';
import type { BlockSource, Extent } from '../block-source.js';
import { SECTOR, SPARSE_MAGIC, SparseExtent, readAt } from './sparse-extent.js';
import {
  MAX_CAPACITY_SECTORS,
  MAX_DESCRIPTOR_BYTES,
  parseDescriptor,
  vmdkError,
  type VmdkDescriptor,
} from './vmdk-descriptor.js';

type Part =
  | { kind: 'flat'; start: number; length: number; fh: FileHandle; fileOffset: number; file: string }
  | { kind: 'sparse'; start: number; length: number; extent: SparseExtent; file: string }
  | { kind: 'zero'; start: number; length: number };

/**
 * VMDK read natively: monolithicSparse, streamOptimized (OVA), monolithicFlat, twoGbMaxExtentSparse/Flat, vmfs
 * (flat) descriptors. Extent files must sit beside the descriptor (no paths: a hostile descriptor cannot make us
 * read other files). Snapshot delta disks (a parent) are refused: back up the VM through its hypervisor instead.
 */
export class VmdkSource implements BlockSource {
  readonly uri: string;
  readonly sizeBytes: number;

  private constructor(
    readonly filePath: string,
    readonly createType: string,
    private readonly parts: Part[],
    private readonly handles: FileHandle[],
  ) {
    this.uri = `file://${filePath}`;
    this.sizeBytes = parts.reduce((a, p) => a + p.length, 0);
  }

  static async open(filePath: string): Promise<VmdkSource> {
    const handles: FileHandle[] = [];
    const openFile = async (p: string) => {
      const fh = await openImageFile(p, false);
      handles.push(fh);
      return fh;
    };
    try {
      const fh = await openFile(filePath);
      const st = await fh.stat();
      if (!st.isFile()) throw new CofferError('SOURCE_UNREADABLE', `${filePath} is not a regular file`);
      const head = st.size >= 512 ? await readAt(fh, 0, 512, filePath) : Buffer.alloc(0);
      let descriptor: VmdkDescriptor;
      const parts: Part[] = [];
      if (head.length === 512 && head.readUInt32LE(0) === SPARSE_MAGIC) {
        const extent = await SparseExtent.open(fh, filePath);
        const text = await extent.embeddedDescriptor();
        descriptor = text
          ? parseDescriptor(text, filePath)
          : { createType: 'monolithicSparse', parentCID: 'ffffffff', extents: [] };
        checkNoParent(descriptor, filePath);
        parts.push({ kind: 'sparse', start: 0, length: extent.sizeBytes, extent, file: filePath });
        return new VmdkSource(filePath, descriptor.createType, parts, handles);
      }
      if (st.size > MAX_DESCRIPTOR_BYTES)
        throw vmdkError(filePath, 'neither a sparse extent nor a descriptor (too large for a descriptor)');
      const text = (await readAt(fh, 0, st.size, filePath)).toString('latin1');
      if (!/#\s*Disk DescriptorFile/i.test(text))
        throw vmdkError(filePath, 'neither a sparse extent nor a descriptor file');
      descriptor = parseDescriptor(text, filePath);
      checkNoParent(descriptor, filePath);
      const dir = path.dirname(filePath);
      let start = 0;
      for (const e of descriptor.extents) {
        const length = e.sectors * SECTOR;
        if (start / SECTOR + e.sectors > MAX_CAPACITY_SECTORS)
          throw vmdkError(filePath, 'extents add up to an absurd size');
        if (e.type === 'ZERO') {
          parts.push({ kind: 'zero', start, length });
        } else {
          const name = e.file!;
          if (
            name === '' ||
            name.includes('/') ||
            name.includes('\\') ||
            name === '.' ||
            name === '..' ||
            name.includes('\0')
          ) {
            throw vmdkError(
              filePath,
              `extent file ${JSON.stringify(name)} must be a plain file name beside the descriptor`,
            );
          }
          const p = path.join(dir, name);
          const efh = await openFile(p);
          if (e.type === 'FLAT' || e.type === 'VMFS') {
            const size = (await efh.stat()).size;
            const fileOffset = e.offsetSectors * SECTOR;
            if (fileOffset + length > size)
              throw vmdkError(filePath, `extent ${name} needs ${fileOffset + length} bytes, the file has ${size}`);
            parts.push({ kind: 'flat', start, length, fh: efh, fileOffset, file: p });
          } else {
            const extent = await SparseExtent.open(efh, p);
            if (extent.sizeBytes < length)
              throw vmdkError(
                filePath,
                `sparse extent ${name} holds ${extent.sizeBytes} bytes, the descriptor says ${length}`,
              );
            parts.push({ kind: 'sparse', start, length, extent, file: p });
          }
        }
        start += length;
      }
      return new VmdkSource(filePath, descriptor.createType, parts, handles);
    } catch (e) {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
      throw e;
    }
  }

  async read(offset: number, length: number, into: Buffer, op?: Op): Promise<void> {
    op?.signal?.throwIfAborted();
    if (offset < 0 || offset + length > this.sizeBytes) throw new CofferError('INTERNAL', 'read outside the disk');
    let done = 0;
    for (const p of this.parts) {
      if (done >= length) break;
      const pos = offset + done;
      if (pos >= p.start + p.length || pos < p.start) continue;
      const n = Math.min(p.start + p.length - pos, length - done);
      const rel = pos - p.start;
      const dst = into.subarray(done, done + n);
      if (p.kind === 'zero') dst.fill(0);
      else if (p.kind === 'sparse') await p.extent.read(rel, n, dst);
      else {
        let got = 0;
        while (got < n) {
          const { bytesRead } = await p.fh.read(dst, got, n - got, p.fileOffset + rel + got);
          if (bytesRead === 0) throw vmdkError(p.file, 'flat extent ended early (truncated during backup?)');
          got += bytesRead;
        }
      }
      done += n;
    }
    if (done !== length) throw new CofferError('INTERNAL', 'VMDK read did not cover the request');
  }

  async *dataExtents(op?: Op): AsyncIterable<Extent> {
    for (const p of this.parts) {
      op?.signal?.throwIfAborted();
      if (p.kind === 'flat') yield { offset: p.start, length: p.length };
      else if (p.kind === 'sparse') {
        for await (const e of p.extent.allocated()) {
          if (e.offset >= p.length) break;
          yield { offset: p.start + e.offset, length: Math.min(e.length, p.length - e.offset) };
        }
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.close().catch(() => undefined)));
  }
}

function checkNoParent(d: VmdkDescriptor, filePath: string): void {
  if (d.parentCID !== 'ffffffff') {
    throw new CofferError(
      'SOURCE_UNREADABLE',
      `${filePath} is a snapshot delta disk (it has a parent); Coffer reads base disks only`,
      {
        hint: 'back up the VM through vSphere, or consolidate its snapshots first',
        details: { source: filePath, format: 'vmdk' },
      },
    );
  }
}
