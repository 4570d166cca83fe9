import { ChunkCodec, type ChunkFileRestore } from '../repository/index.js';

/** Messages between CodecPool and its workers. Buffers travel as transferred ArrayBuffers (no copies). */
export interface CodecParams {
  encKey: Uint8Array;
  idKey: Uint8Array;
  zstdLevel: number;
  maxChunkBytes: number;
}

export type CodecRequest =
  /** Zero check + hash; unless the id is in the known set, also seal when `seal` (speculative). */
  /** `into`: a recycled buffer to seal into (handed back as `data` when used, as `spare` when not) */
  | { seq: number; op: 'process'; data: ArrayBuffer; length: number; seal: boolean; into: ArrayBuffer | null }
  | { seq: number; op: 'seal'; data: ArrayBuffer; length: number; idHex: string }
  | {
      seq: number;
      op: 'open';
      data: ArrayBuffer;
      length: number;
      idHex: string;
      checkId: boolean;
      into: ArrayBuffer | null;
    }
  /** Read, open and write one chunk of a restore on the worker (repository/chunk-file.ts). */
  | { seq: number; op: 'restoreFile'; req: ChunkFileRestore; data: ArrayBuffer | null; length: number }
  /** The end of a restore: close the worker's descriptor of `target` (a deferred write error is reported). */
  | { seq: number; op: 'closeTarget'; target: string; targetName: string }
  /** Ids known to be stored (sorted, 32 bytes each), shared with every worker without copies. */
  | { seq: number; op: 'known'; ids: SharedArrayBuffer | null; length: number }
  /** The keys, for a worker started before they were derived (CodecPool.startNow), before anything needing them */
  | { seq: number; op: 'params'; params: CodecParams };

export type CodecReply =
  | {
      seq: number;
      ok: true;
      /** The input buffer, handed back for reuse (process, seal), or an `into` buffer open did not use. */
      input?: ArrayBuffer;
      id?: ArrayBuffer | null;
      known?: boolean;
      /** Sealed blob (seal, speculative process) or plaintext (open). */
      data?: ArrayBuffer;
      /** process: the `into` buffer, handed back unused */
      spare?: ArrayBuffer;
      length: number;
    }
  | { seq: number; ok: false; code: string; message: string; details?: Record<string, unknown> };

/** A Buffer that owns its whole ArrayBuffer, so it can be transferred (copies pool slices and views). */
export function exclusive(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && !(buf.buffer instanceof SharedArrayBuffer))
    return buf;
  const copy = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(copy);
  return copy;
}

/** The codec for these keys (the pool's inline one and each worker's). */
export function codecOf(params: CodecParams): ChunkCodec {
  return new ChunkCodec(
    { encKey: Buffer.from(params.encKey), idKey: Buffer.from(params.idKey) },
    params.zstdLevel,
    params.maxChunkBytes,
  );
}
