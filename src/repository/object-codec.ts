import { AEAD_TAG_BYTES, aeadOpen, aeadOpenInto, aeadSealInto, randomNonce } from '../crypto/index.js';
import {
  COMPRESSION_NONE,
  COMPRESSION_ZSTD,
  ENVELOPE_HEADER_BYTES,
  compressIfWorthwhile,
  decodeEnvelopeHeader,
  decompressBounded,
  encodeEnvelopeHeader,
  envelopeAad,
  type ObjectKind,
} from '../format/index.js';
import { CofferError } from '../shared/index.js';

/**
 * Seals a plaintext into an envelope (FORMAT.md §2): compress when it pays, then AES-256-GCM. `into`: a buffer to
 * seal into when it is large enough (the result is then a view of it from offset 0), recycled by a backup.
 */
export function sealObject(
  encKey: Uint8Array,
  kind: ObjectKind,
  name: string,
  plaintext: Uint8Array,
  zstdLevel: number | null,
  into?: Buffer,
): Buffer {
  const compressed = zstdLevel === null ? undefined : compressIfWorthwhile(plaintext, zstdLevel);
  const header = encodeEnvelopeHeader({
    kind,
    compression: compressed ? COMPRESSION_ZSTD : COMPRESSION_NONE,
    nonce: randomNonce(),
  });
  const payload = compressed ?? plaintext;
  const size = ENVELOPE_HEADER_BYTES + payload.length + AEAD_TAG_BYTES;
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafeSlow(size);
  header.copy(out, 0);
  aeadSealInto(encKey, header.subarray(8, 20), payload, envelopeAad(header, name), out, ENVELOPE_HEADER_BYTES);
  return out;
}

/** Opens an envelope; any tampering, wrong name or wrong key is CORRUPT naming the object. */
/**
 * `into`: an optional buffer to decompress into (reused across calls by restore); the result may be a view of it.
 * `payloadInto`: an optional buffer for the decrypted payload (at least the blob's length), for a caller that uses
 * the result before its next call (an uncompressed payload is returned as a view of it).
 */
export function openObject(
  encKey: Uint8Array,
  kind: ObjectKind,
  name: string,
  blob: Uint8Array,
  maxPlainBytes: number,
  into?: Buffer,
  payloadInto?: Buffer,
): Buffer {
  const header = decodeEnvelopeHeader(blob, kind, name);
  const sealed = blob.subarray(ENVELOPE_HEADER_BYTES);
  const aad = envelopeAad(blob, name);
  const payload =
    payloadInto && payloadInto.length >= sealed.length
      ? aeadOpenInto(encKey, header.nonce, sealed, aad, payloadInto)
      : aeadOpen(encKey, header.nonce, sealed, aad);
  if (!payload) {
    throw new CofferError('CORRUPT', `${kind} ${name}: authentication failed (data damaged or tampered with)`, {
      details: { object: name, kind },
    });
  }
  if (header.compression === COMPRESSION_ZSTD)
    return decompressBounded(payload, maxPlainBytes, `${kind} ${name}`, into);
  if (payload.length > maxPlainBytes)
    throw new CofferError('CORRUPT', `${kind} ${name}: ${payload.length} bytes exceeds the limit`);
  return payload;
}
