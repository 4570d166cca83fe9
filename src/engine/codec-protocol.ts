/** Messages between CodecPool and its workers. Buffers travel as transferred ArrayBuffers (no copies). */
export interface CodecParams {
  encKey: Uint8Array;
  idKey: Uint8Array;
  zstdLevel: number;
  maxChunkBytes: number;
}

export type CodecRequest =
  | { seq: number; op: 'hash'; data: ArrayBuffer; length: number }
  | { seq: number; op: 'seal'; data: ArrayBuffer; length: number; idHex: string }
  | { seq: number; op: 'open'; data: ArrayBuffer; length: number; idHex: string };

export type CodecReply =
  | { seq: number; ok: true; id?: ArrayBuffer | null; data: ArrayBuffer; length: number }
  | { seq: number; ok: false; code: string; message: string; details?: Record<string, unknown> };

/** A Buffer that owns its whole ArrayBuffer, so it can be transferred (copies pool slices and views). */
export function exclusive(buf: Buffer): Buffer {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && !(buf.buffer instanceof SharedArrayBuffer)) return buf;
  const copy = Buffer.allocUnsafeSlow(buf.length);
  buf.copy(copy);
  return copy;
}
