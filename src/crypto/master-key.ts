import { createHmac, hkdfSync, randomBytes } from 'node:crypto';

export const MASTER_KEY_BYTES = 32;

/** Subkeys derived from the repository's random master key with HKDF-SHA256 (FORMAT.md §3). */
export interface RepoKeys {
  /** AES-256-GCM key for every encrypted object. */
  readonly encKey: Buffer;
  /** HMAC-SHA256 key for chunk ids and index ids. */
  readonly idKey: Buffer;
  /** HMAC-SHA256 key authenticating the plaintext repository config and lock names. */
  readonly macKey: Buffer;
}

export const HKDF_INFO = {
  enc: 'coffer/v1/encryption',
  id: 'coffer/v1/chunk-id',
  mac: 'coffer/v1/config-mac',
} as const;

export function newMasterKey(): Buffer {
  return randomBytes(MASTER_KEY_BYTES);
}

export function deriveRepoKeys(master: Uint8Array, repoId: string): RepoKeys {
  const salt = Buffer.from(repoId, 'utf8');
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', master, salt, info, 32));
  return { encKey: derive(HKDF_INFO.enc), idKey: derive(HKDF_INFO.id), macKey: derive(HKDF_INFO.mac) };
}

/** Keyed digest: HMAC-SHA256(key, data). Chunk ids are this over the chunk plaintext. */
export function keyedDigest(key: Uint8Array, data: Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
