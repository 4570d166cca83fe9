import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { aeadOpen, aeadSeal, deriveKey, newScryptParams, randomNonce, type ScryptParams } from '../crypto/index.js';
import { decodeKeyFile, encodeKeyFile, keyWrapAad, type KeyFile } from '../format/index.js';
import type { BlobStore } from '../storage/index.js';
import { CofferError, type Logger, silentLogger } from '../shared/index.js';
import { KEYS_PREFIX, baseName, keyBlob } from './layout.js';

export interface KdfCost {
  N?: number;
  r?: number;
  p?: number;
}

/** Writes a new key file wrapping `master` under `password`. */
export async function writeKeyFile(
  store: BlobStore,
  repoId: string,
  master: Buffer,
  password: string,
  label: string,
  cost: KdfCost = {},
): Promise<KeyFile> {
  const kdf = newScryptParams(cost);
  const kek = await deriveKey(password, kdf);
  const id = randomBytes(8).toString('hex');
  const nonce = randomNonce();
  const wrapped = Buffer.concat([nonce, aeadSeal(kek, nonce, master, keyWrapAad(repoId, id))]);
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  const file: KeyFile = {
    version: 1,
    id,
    createdAt: new Date().toISOString(),
    host: hostname(),
    user,
    label,
    kdf: { algorithm: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, salt: kdf.salt },
    wrapped: wrapped.toString('base64'),
  };
  await store.put(keyBlob(id), encodeKeyFile(file));
  return file;
}

export async function listKeyFiles(store: BlobStore, logger: Logger = silentLogger): Promise<KeyFile[]> {
  const out: KeyFile[] = [];
  for await (const b of store.list(KEYS_PREFIX)) {
    try {
      if (b.name !== keyBlob(baseName(b.name))) continue; // keys/<id> only, not keys/sub/<id>
      const k = decodeKeyFile(await store.get(b.name), b.name);
      if (k.id !== baseName(b.name)) throw new CofferError('CORRUPT', `key file ${b.name}: id does not match its name`);
      out.push(k);
    } catch (e) {
      logger.warn(`skipping unreadable key file ${b.name}: ${(e as Error).message}`);
    }
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Unwraps the master key with one given key file (after writing it, to check it). */
export async function unlockKeyFile(
  store: BlobStore,
  repoId: string,
  keyId: string,
  password: string,
): Promise<Buffer> {
  const k = decodeKeyFile(await store.get(keyBlob(keyId)), keyBlob(keyId));
  const kek = await deriveKey(password, k.kdf as ScryptParams);
  const wrapped = Buffer.from(k.wrapped, 'base64');
  const master =
    wrapped.length === 60
      ? aeadOpen(kek, wrapped.subarray(0, 12), wrapped.subarray(12), keyWrapAad(repoId, k.id))
      : undefined;
  if (!master) throw new CofferError('WRONG_KEY', `key ${keyId} does not open with this password`);
  return master;
}

/** Tries every key file; returns the master key and the id of the key that opened it, or throws WRONG_KEY. */
export async function unlockMasterKey(
  store: BlobStore,
  repoId: string,
  password: string,
  logger: Logger = silentLogger,
  /** the key files, read already (listKeyFiles) */
  preloaded?: KeyFile[],
): Promise<{ master: Buffer; keyId: string }> {
  const files = preloaded ?? (await listKeyFiles(store, logger));
  if (files.length === 0) throw new CofferError('CORRUPT', 'the repository has no readable key files');
  for (const k of files) {
    let kek: Buffer;
    try {
      kek = await deriveKey(password, k.kdf as ScryptParams);
    } catch (e) {
      logger.warn(`key ${k.id}: ${(e as Error).message}`);
      continue;
    }
    const wrapped = Buffer.from(k.wrapped, 'base64');
    if (wrapped.length !== 12 + 32 + 16) continue;
    const master = aeadOpen(kek, wrapped.subarray(0, 12), wrapped.subarray(12), keyWrapAad(repoId, k.id));
    if (master) return { master, keyId: k.id };
  }
  throw new CofferError('WRONG_KEY', 'wrong password: no key of this repository opens with it', {
    hint: 'check COFFER_PASSWORD or --password-file',
  });
}
