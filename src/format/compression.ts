import { createRequire } from 'node:module';
import { CofferError } from '../shared/index.js';

const require = createRequire(import.meta.url);
// zstd-napi's low-level binding: we need the frame-size queries to bound decompression of untrusted input.
const binding = require('zstd-napi/binding') as {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(size: number): number;
  getFrameContentSize(frame: Uint8Array): number | null;
  findFrameCompressedSize(frame: Uint8Array): number;
};

/** Compression ids in the envelope header (FORMAT.md §2). */
export const COMPRESSION_NONE = 0;
export const COMPRESSION_ZSTD = 1;
export type CompressionId = typeof COMPRESSION_NONE | typeof COMPRESSION_ZSTD;

let cctx: InstanceType<typeof binding.CCtx> | undefined;
let dctx: InstanceType<typeof binding.DCtx> | undefined;
/** Reused output buffer (one per thread: module state is per worker). */
let scratch: Buffer = Buffer.alloc(0);

/**
 * zstd-compresses `data`; returns undefined when that saves less than 1/32 of the size ("does not pay"),
 * so incompressible chunks are stored as they are and restored without a decompression pass.
 * The result is a view of a per-thread scratch buffer, valid until the next call: copy or consume it at once.
 */
export function compressIfWorthwhile(data: Uint8Array, level: number): Buffer | undefined {
  cctx ??= new binding.CCtx();
  const bound = binding.compressBound(data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound);
  const n = cctx.compress(scratch, data, level);
  if (n > data.length - (data.length >> 5)) return undefined;
  return scratch.subarray(0, n);
}

/**
 * Decompresses one zstd frame that must declare its content size, at most maxBytes.
 * Hostile input (no size, several frames, a size past maxBytes, garbage) is CORRUPT, never an allocation bomb.
 */
export function decompressBounded(frame: Uint8Array, maxBytes: number, what: string, into?: Buffer): Buffer {
  let size: number | null;
  try {
    size = binding.getFrameContentSize(frame);
    if (binding.findFrameCompressedSize(frame) !== frame.length) throw new Error('trailing data after the zstd frame');
  } catch (e) {
    throw new CofferError('CORRUPT', `${what}: invalid zstd frame (${(e as Error).message})`, { cause: e });
  }
  if (size === null || size > maxBytes) {
    throw new CofferError('CORRUPT', `${what}: zstd frame declares ${size ?? 'no'} content size (limit ${maxBytes})`);
  }
  dctx ??= new binding.DCtx();
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  let n: number;
  try {
    n = dctx.decompress(out, frame);
  } catch (e) {
    throw new CofferError('CORRUPT', `${what}: zstd decompression failed (${(e as Error).message})`, { cause: e });
  }
  if (n !== size) throw new CofferError('CORRUPT', `${what}: zstd frame produced ${n} bytes, declared ${size}`);
  return out;
}
