import { JsonReader } from './json-check.js';

/**
 * Key file, blob 'keys/<key id>' (FORMAT.md §4): the repository master key wrapped with AES-256-GCM under a key
 * derived from a password with scrypt. Several key files may wrap the same master key.
 * `wrapped` is base64 of nonce(12) || ciphertext(32) || tag(16); AAD = 'coffer-key-v1:' + repository id + ':' + key id.
 */
export const KEY_FILE_VERSION = 1;

export interface KeyFile {
  version: number;
  id: string;
  createdAt: string;
  host: string;
  user: string;
  label: string;
  kdf: { algorithm: 'scrypt'; N: number; r: number; p: number; salt: string };
  wrapped: string;
}

export function keyWrapAad(repoId: string, keyId: string): Buffer {
  return Buffer.from(`coffer-key-v1:${repoId}:${keyId}`, 'utf8');
}

export function encodeKeyFile(k: KeyFile): Buffer {
  return Buffer.from(JSON.stringify(k, null, 2) + '\n', 'utf8');
}

export function decodeKeyFile(bytes: Uint8Array, name: string): KeyFile {
  const r = JsonReader.parse(`key file ${name}`, bytes);
  const version = r.int('version', 1, 1);
  const kdf = r.field('kdf');
  return {
    version,
    id: r.matching('id', /^[0-9a-f]{16}$/),
    createdAt: r.time('createdAt'),
    host: r.str('host', 256),
    user: r.str('user', 256),
    label: r.optStr('label', 256) ?? '',
    kdf: {
      algorithm: kdf.literal('algorithm', ['scrypt'] as const),
      N: kdf.int('N', 2, 2 ** 30),
      r: kdf.int('r', 1, 1024),
      p: kdf.int('p', 1, 1024),
      salt: kdf.matching('salt', /^[A-Za-z0-9+/]{43}=$/),
    },
    wrapped: r.matching('wrapped', /^[A-Za-z0-9+/]+={0,2}$/),
  };
}
