import { keyedDigest } from '../crypto/index.js';
import { ZERO_CHUNK_ID } from '../format/index.js';
import { CofferError } from '../shared/index.js';
import { openObject, sealObject } from './object-codec.js';

export interface ChunkKeys {
  encKey: Uint8Array;
  idKey: Uint8Array;
}

/**
 * The CPU-heavy per-chunk work, free of I/O so it can run in worker threads (engine/codec-pool.ts):
 * zero detection and keyed hashing, sealing (compress + encrypt), opening (decrypt + decompress + re-hash).
 */
export class ChunkCodec {
  private zeros: Buffer = Buffer.alloc(0);

  constructor(
    private readonly keys: ChunkKeys,
    private readonly zstdLevel: number,
    readonly maxChunkBytes: number,
  ) {}

  /** Returns null for an all-zero chunk (never stored), otherwise its 32-byte id. */
  hash(plain: Uint8Array): Buffer | null {
    if (this.isZero(plain)) return null;
    return keyedDigest(this.keys.idKey, plain);
  }

  isZero(plain: Uint8Array): boolean {
    if (this.zeros.length < plain.length) this.zeros = Buffer.alloc(Math.max(plain.length, this.maxChunkBytes));
    return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).equals(this.zeros.subarray(0, plain.length));
  }

  /** `into`: see sealObject (a recycled buffer; the result may be a view of it). */
  seal(plain: Uint8Array, idHex: string, into?: Buffer): Buffer {
    return sealObject(this.keys.encKey, 'chunk', idHex, plain, this.zstdLevel, into);
  }

  /**
   * Decrypts and decompresses. The AEAD tag (with the id in its AAD) proves the blob was sealed for this id by a key
   * holder; with `checkId` the plaintext is also re-hashed to its id (verify --read-data), which also catches a
   * writer that sealed wrong content. CORRUPT on any mismatch. `payloadInto`: see openObject (the result may then be a
   * view of it: use it before the next call).
   */
  open(blob: Uint8Array, idHex: string, checkId = true, into?: Buffer, payloadInto?: Buffer): Buffer {
    const plain = openObject(this.keys.encKey, 'chunk', idHex, blob, this.maxChunkBytes, into, payloadInto);
    if (!checkId) return plain;
    const actual = keyedDigest(this.keys.idKey, plain);
    if (actual.toString('hex') !== idHex || actual.equals(ZERO_CHUNK_ID)) {
      throw new CofferError('CORRUPT', `chunk ${idHex}: content does not match its id`, { details: { chunk: idHex } });
    }
    return plain;
  }
}
