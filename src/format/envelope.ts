import { CofferError } from '../shared/index.js';
import { COMPRESSION_NONE, COMPRESSION_ZSTD, type CompressionId } from './compression.js';

/**
 * Envelope of every encrypted repository object (FORMAT.md §2):
 *
 *   offset size field
 *   0      4    magic: object type, ASCII ('CFCK' chunk, 'CFIX' fixed index, 'CFRP' restore-point manifest)
 *   4      1    envelope version (1)
 *   5      1    compression of the payload before encryption (0 none, 1 zstd)
 *   6      2    reserved, zero
 *   8      12   AES-256-GCM nonce (random)
 *   20     n    ciphertext of the (compressed) payload
 *   20+n   16   GCM tag
 *
 * AAD = the 20 header bytes followed by the UTF-8 object name (a chunk's or index's hex id, a restore point's id),
 * so a blob moved or renamed to another object's name fails authentication.
 */
export const ENVELOPE_VERSION = 1;
export const ENVELOPE_HEADER_BYTES = 20;
export const ENVELOPE_TAG_BYTES = 16;
export const ENVELOPE_OVERHEAD_BYTES = ENVELOPE_HEADER_BYTES + ENVELOPE_TAG_BYTES;

export const MAGIC = {
  chunk: 'CFCK',
  index: 'CFIX',
  manifest: 'CFRP',
} as const;
export type ObjectKind = keyof typeof MAGIC;

export interface EnvelopeHeader {
  kind: ObjectKind;
  compression: CompressionId;
  nonce: Buffer;
}

export function encodeEnvelopeHeader(h: EnvelopeHeader): Buffer {
  if (h.nonce.length !== 12) throw new CofferError('INTERNAL', 'nonce must be 12 bytes');
  const b = Buffer.alloc(ENVELOPE_HEADER_BYTES);
  b.write(MAGIC[h.kind], 0, 'ascii');
  b[4] = ENVELOPE_VERSION;
  b[5] = h.compression;
  h.nonce.copy(b, 8);
  return b;
}

/** Parses and checks the header of an envelope expected to hold `kind`. Throws CORRUPT on anything else. */
export function decodeEnvelopeHeader(blob: Uint8Array, kind: ObjectKind, name: string): EnvelopeHeader {
  if (blob.length < ENVELOPE_OVERHEAD_BYTES) {
    throw new CofferError('CORRUPT', `${kind} ${name}: ${blob.length} bytes is shorter than an envelope`, {
      details: { object: name },
    });
  }
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const magic = buf.toString('latin1', 0, 4);
  if (magic !== MAGIC[kind]) {
    throw new CofferError('CORRUPT', `${kind} ${name}: bad magic ${JSON.stringify(magic)}`, {
      details: { object: name },
    });
  }
  if (buf[4] !== ENVELOPE_VERSION) {
    throw new CofferError('REPO_UNSUPPORTED', `${kind} ${name}: envelope version ${buf[4]} is not supported`, {
      details: { object: name },
    });
  }
  const compression = buf[5];
  if (compression !== COMPRESSION_NONE && compression !== COMPRESSION_ZSTD) {
    throw new CofferError('CORRUPT', `${kind} ${name}: unknown compression ${compression}`, {
      details: { object: name },
    });
  }
  if (buf.readUInt16LE(6) !== 0) {
    throw new CofferError('CORRUPT', `${kind} ${name}: reserved header bytes are not zero`, {
      details: { object: name },
    });
  }
  return { kind, compression, nonce: Buffer.from(buf.subarray(8, 20)) };
}

export function envelopeAad(header: Uint8Array, name: string): Buffer {
  return Buffer.concat([header.subarray(0, ENVELOPE_HEADER_BYTES), Buffer.from(name, 'utf8')]);
}
