import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256-GCM with a 96-bit random nonce and a 128-bit tag (FORMAT.md §3). */
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;

export function randomNonce(): Buffer {
  return randomBytes(AEAD_NONCE_BYTES);
}

/** Encrypts into out[at..at+len] and writes the tag after it (one allocation for the whole envelope). */
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
  const head = c.update(plaintext);
  head.copy(out, at);
  const tail = c.final();
  tail.copy(out, at + head.length);
  c.getAuthTag().copy(out, at + head.length + tail.length);
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

/** Slice of the ciphertext aeadOpenInto decrypts at a time (its output is copied while still in cache). */
const OPEN_SLICE_BYTES = 64 * 1024;

/**
 * As aeadOpen, but the plaintext goes into `into` (at least as long as the ciphertext) and the result is a view of it.
 * Node's decipher returns a fresh buffer per update: fed 64 KiB at a time those stay small and recycled by the
 * allocator, where one update of a whole 1 MiB chunk costs a fresh mapping, its page faults and a copy every chunk
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
    for (let off = 0; off < ctLen; off += OPEN_SLICE_BYTES) {
      at += d.update(sealed.subarray(off, Math.min(ctLen, off + OPEN_SLICE_BYTES))).copy(into, at);
    }
    at += d.final().copy(into, at);
    return into.subarray(0, at);
  } catch {
    return undefined;
  }
}
