import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import {
  FixedIndex,
  compressIfWorthwhile,
  decodeEnvelopeHeader,
  decodeKeyFile,
  decodeManifest,
  decodeRepoConfig,
  decompressBounded,
  encodeEnvelopeHeader,
} from './index.js';

/** Parsers of untrusted bytes throw CofferError, never anything else, never hang or over-allocate. */
function onlyCofferErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CofferError, `threw ${String(e)}`);
  }
}

test('random and truncated input to every decoder yields CofferError only', () => {
  const valid = FixedIndex.create(65536, 1_000_000);
  valid.set(3, randomBytes(32));
  for (let i = 0; i < 300; i++) {
    const junk = randomBytes(i % 97);
    onlyCofferErrors(() => decodeEnvelopeHeader(junk, 'chunk', 'x'));
    onlyCofferErrors(() => FixedIndex.decode(junk, 'x'));
    onlyCofferErrors(() => decodeManifest(junk, 'x'));
    onlyCofferErrors(() => decodeRepoConfig(junk));
    onlyCofferErrors(() => decodeKeyFile(junk, 'x'));
    onlyCofferErrors(() => decompressBounded(junk, 1 << 20, 'x'));
    // truncations and bit flips of a valid index
    const cut = valid.bytes.subarray(0, Math.floor(Math.random() * valid.bytes.length));
    onlyCofferErrors(() => FixedIndex.decode(Buffer.from(cut), 'x'));
    const flipped = Buffer.from(valid.bytes);
    flipped[Math.floor(Math.random() * 32)] ^= 0xff;
    onlyCofferErrors(() => FixedIndex.decode(flipped, 'x'));
  }
  for (const text of [
    'null',
    '[]',
    '"x"',
    '{}',
    '{"magic":"coffer-repository","formatVersion":1}',
    '{"formatVersion":1e400}',
  ]) {
    onlyCofferErrors(() => decodeRepoConfig(Buffer.from(text)));
    onlyCofferErrors(() => decodeManifest(Buffer.from(text), 'x'));
    onlyCofferErrors(() => decodeKeyFile(Buffer.from(text), 'x'));
  }
});

test('a fixed index declaring an absurd size is refused before allocation', () => {
  const b = Buffer.from(FixedIndex.create(65536, 65536).bytes);
  b.writeBigUInt64LE(2n ** 62n, 16);
  b.writeBigUInt64LE(2n ** 46n, 24);
  assert.throws(
    () => FixedIndex.decode(b, 'huge'),
    (e: unknown) => e instanceof CofferError && e.code === 'CORRUPT',
  );
  assert.throws(
    () => FixedIndex.create(65536, 2 ** 50),
    (e: unknown) => e instanceof CofferError,
  );
});

test('zstd: no decompression bombs, frames must declare a bounded content size', () => {
  const data = Buffer.alloc(1 << 20, 0x41);
  const frame = compressIfWorthwhile(data, 3)!;
  assert.ok(frame.length < 1000);
  assert.equal(decompressBounded(frame, 1 << 20, 'ok').length, 1 << 20);
  assert.throws(() => decompressBounded(frame, (1 << 20) - 1, 'small limit'), /content size/);
  assert.throws(() => decompressBounded(Buffer.concat([frame, frame]), 4 << 20, 'two frames'), /trailing data|invalid/);
  // a frame with the content-size flag cleared (streaming frame, size unknown)
  const noSize = Buffer.from(frame);
  // FCS flag 0, single-segment off -> needs a window descriptor: now malformed or sizeless
  noSize[4] = noSize[4]! & 0x3f & ~0x20;
  onlyCofferErrors(() => decompressBounded(noSize, 1 << 20, 'no size'));
  assert.throws(() => decompressBounded(noSize, 1 << 20, 'no size'), CofferError);
});

test('incompressible data is stored uncompressed', () => {
  assert.equal(compressIfWorthwhile(randomBytes(65536), 3), undefined);
});

test('envelope header: round trip and strict checks', () => {
  const nonce = randomBytes(12);
  const h = encodeEnvelopeHeader({ kind: 'index', compression: 1, nonce });
  assert.equal(h.length, 20);
  const d = decodeEnvelopeHeader(Buffer.concat([h, Buffer.alloc(16)]), 'index', 'n');
  assert.deepEqual(d.nonce, nonce);
  assert.throws(() => decodeEnvelopeHeader(Buffer.concat([h, Buffer.alloc(16)]), 'chunk', 'n'), /bad magic/);
  const v2 = Buffer.concat([h, Buffer.alloc(16)]);
  v2[4] = 2;
  assert.throws(
    () => decodeEnvelopeHeader(v2, 'index', 'n'),
    (e: unknown) => e instanceof CofferError && e.code === 'REPO_UNSUPPORTED',
  );
});
