import { JsonReader } from './json-check.js';
import { isValidChunkSize } from './fixed-index.js';
import { CofferError } from '../shared/index.js';

/**
 * Repository config, blob 'config' (FORMAT.md §1). Plaintext JSON so that a repository can be recognised
 * and its version checked before any key is opened; `mac` (HMAC-SHA256 under the config MAC key over the
 * canonical encoding of every other field) authenticates it once a key is open.
 */
export const REPO_MAGIC = 'coffer-repository';
export const FORMAT_VERSION = 1;

export interface RepoConfig {
  magic: typeof REPO_MAGIC;
  formatVersion: number;
  id: string;
  createdAt: string;
  chunkSizeBytes: number;
  chunkIdAlgorithm: 'hmac-sha256';
  cipher: 'aes-256-gcm';
  compression: { algorithm: 'zstd'; level: number };
  mac: string;
}

export type UnsignedRepoConfig = Omit<RepoConfig, 'mac'>;

/** The bytes the MAC covers: fixed key order, no whitespace. */
export function canonicalConfigBytes(c: UnsignedRepoConfig): Buffer {
  const ordered = {
    magic: c.magic,
    formatVersion: c.formatVersion,
    id: c.id,
    createdAt: c.createdAt,
    chunkSizeBytes: c.chunkSizeBytes,
    chunkIdAlgorithm: c.chunkIdAlgorithm,
    cipher: c.cipher,
    compression: { algorithm: c.compression.algorithm, level: c.compression.level },
  };
  return Buffer.from(JSON.stringify(ordered), 'utf8');
}

export function encodeRepoConfig(c: RepoConfig): Buffer {
  return Buffer.from(JSON.stringify(c, null, 2) + '\n', 'utf8');
}

export function decodeRepoConfig(bytes: Uint8Array): RepoConfig {
  const r = JsonReader.parse('repository config', bytes);
  if (r.str('magic', 64) !== REPO_MAGIC) r.field('magic').fail(`is not "${REPO_MAGIC}"`);
  const formatVersion = r.int('formatVersion', 1, 1_000_000);
  if (formatVersion !== FORMAT_VERSION) {
    throw new CofferError(
      'REPO_UNSUPPORTED',
      `repository format version ${formatVersion} is not supported (this Coffer reads version ${FORMAT_VERSION})`,
    );
  }
  const chunkSizeBytes = r.int('chunkSizeBytes');
  if (!isValidChunkSize(chunkSizeBytes)) r.field('chunkSizeBytes').fail('must be a power of two from 64 KiB to 8 MiB');
  const chunkIdAlgorithm = r.str('chunkIdAlgorithm', 64);
  const cipher = r.str('cipher', 64);
  const comp = r.field('compression');
  const algorithm = comp.str('algorithm', 64);
  if (chunkIdAlgorithm !== 'hmac-sha256' || cipher !== 'aes-256-gcm' || algorithm !== 'zstd') {
    throw new CofferError('REPO_UNSUPPORTED', `unsupported algorithms ${chunkIdAlgorithm}/${cipher}/${algorithm}`);
  }
  return {
    magic: REPO_MAGIC,
    formatVersion,
    id: r.matching('id', /^[0-9a-f]{32}$/),
    createdAt: r.time('createdAt'),
    chunkSizeBytes,
    chunkIdAlgorithm,
    cipher,
    compression: { algorithm, level: comp.int('level', -7, 22) },
    mac: r.matching('mac', /^[0-9a-f]{64}$/),
  };
}
