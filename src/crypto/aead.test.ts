import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  AEAD_SLICE_BYTES,
  AEAD_TAG_BYTES,
  aeadOpen,
  aeadOpenInto,
  aeadSeal,
  aeadSealInto,
  randomNonce,
} from './aead.js';

// Sizes around the slices the cipher is fed in (aeadSealInto, aeadOpenInto) and a whole 1 MiB chunk.
const S = AEAD_SLICE_BYTES;
const SIZES = [0, 1, S - 1, S, S + 1, 3 * S + 17, 65536, 1024 * 1024, 1024 * 1024 + 36];

test('sealing and opening in slices gives the one-shot result, for every size around a slice', () => {
  const key = randomBytes(32);
  const aad = Buffer.from('chunk abc');
  for (const n of SIZES) {
    const plain = randomBytes(n);
    const nonce = randomNonce();
    const oneShot = aeadSeal(key, nonce, plain, aad);
    const out = Buffer.alloc(7 + n + AEAD_TAG_BYTES + 5, 0xaa);
    aeadSealInto(key, nonce, plain, aad, out, 7);
    assert.ok(out.subarray(7, 7 + n + AEAD_TAG_BYTES).equals(oneShot), `seal of ${n} bytes`);
    assert.ok(
      out.subarray(0, 7).equals(Buffer.alloc(7, 0xaa)) &&
        out.subarray(7 + n + AEAD_TAG_BYTES).equals(Buffer.alloc(5, 0xaa)),
    );
    const into = Buffer.alloc(n + 3);
    const opened = aeadOpenInto(key, nonce, oneShot, aad, into);
    assert.ok(opened?.equals(plain), `open of ${n} bytes`);
    assert.equal(opened!.buffer, into.buffer, 'a view of the given buffer');
    assert.ok(aeadOpen(key, nonce, oneShot, aad)!.equals(plain));
  }
});

test('aeadOpenInto refuses what aeadOpen refuses: tampering, another AAD, a short buffer', () => {
  const key = randomBytes(32);
  const nonce = randomNonce();
  const aad = Buffer.from('chunk abc');
  const plain = randomBytes(200_000);
  const sealed = aeadSeal(key, nonce, plain, aad);
  const into = Buffer.alloc(plain.length);
  for (const at of [0, 65536, plain.length - 1, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at]! ^= 1;
    assert.equal(aeadOpenInto(key, nonce, bad, aad, into), undefined, `flipped byte ${at}`);
  }
  assert.equal(aeadOpenInto(key, nonce, sealed, Buffer.from('chunk abd'), into), undefined);
  assert.equal(aeadOpenInto(randomBytes(32), nonce, sealed, aad, into), undefined);
  assert.equal(aeadOpenInto(key, nonce, sealed, aad, Buffer.alloc(plain.length - 1)), undefined);
  assert.equal(aeadOpenInto(key, nonce, sealed.subarray(0, 10), aad, into), undefined);
});
