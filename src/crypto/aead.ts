import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256-GCM with a 96-bit random nonce and a 128-bit tag (FORMAT.md §3). */
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

/**
 * What aeadSealInto and aeadOpenInto pass through the cipher at a time (its output copied while still in cache).
 * 16 KiB, not 64: in a worker thread glibc's per-thread arena gives 64 KiB outputs back to the kernel and faults them
 * in again, up to a page fault per 4 KiB of data (`node bench/aead-slices.mjs`, two workers sealing 512 MiB each:
 * 1.2-1.6 GB/s and 62,000-86,000 faults at 64 KiB, 2.4-3.1 GB/s and 13,000-17,000 faults at 16 KiB; on the main
 * thread 16 KiB costs ~15% against 64 KiB, and the main thread seals only the first chunks of a job).
 */
export const AEAD_SLICE_BYTES = 16 * 1024;

export function randomNonce(): Buffer {
  return randomBytes(AEAD_NONCE_BYTES);
}

/**
 * Encrypts into out[at..at+len] and writes the tag after it (one allocation for the whole envelope). The plaintext
 * goes through the cipher AEAD_SLICE_BYTES at a time: Node's cipher returns a fresh buffer per update, and small ones
 * are recycled by the allocator where a whole chunk's would be a fresh mapping, its page faults and a copy every chunk.
 */
export function aeadSealInto(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  out: Buffer,
  at: number,
): void {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  c.setAAD(aad);
  let pos = at;
  for (let off = 0; off < plaintext.length; off += AEAD_SLICE_BYTES) {
    pos += c.update(plaintext.subarray(off, Math.min(plaintext.length, off + AEAD_SLICE_BYTES))).copy(out, pos);
  }
  pos += c.final().copy(out, pos);
  c.getAuthTag().copy(out, pos);
}

/** Returns ciphertext || tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  c.setAAD(aad);
  const head = c.update(plaintext);
  const tail = c.final();
  return Buffer.concat([head, tail, c.getAuthTag()]);
}

/** Opens ciphertext || tag; returns undefined when authentication fails (wrong key or tampered data). */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < AEAD_TAG_BYTES) return undefined;
  const ct = sealed.subarray(0, sealed.length - AEAD_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - AEAD_TAG_BYTES);
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    const head = d.update(ct);
    const tail = d.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return undefined;
  }
}

/**
 * As aeadOpen, but the plaintext goes into `into` (at least as long as the ciphertext) and the result is a view of it.
 * Node's decipher returns a fresh buffer per update: fed AEAD_SLICE_BYTES at a time those stay small and recycled by
 * the allocator, where one update of a whole 1 MiB chunk costs a fresh mapping, its page faults and a copy every chunk
 * (a restore's hot loop, repository/chunk-file.ts). Nothing in `into` may be used unless this returns a buffer.
 */
export function aeadOpenInto(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
  into: Buffer,
): Buffer | undefined {
  if (sealed.length < AEAD_TAG_BYTES) return undefined;
  const ctLen = sealed.length - AEAD_TAG_BYTES;
  if (into.length < ctLen) return undefined;
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(ctLen));
    let at = 0;
    for (let off = 0; off < ctLen; off += AEAD_SLICE_BYTES) {
      at += d.update(sealed.subarray(off, Math.min(ctLen, off + AEAD_SLICE_BYTES))).copy(into, at);
    }
    at += d.final().copy(into, at);
    return into.subarray(0, at);
  } catch {
    return undefined;
  }
}
