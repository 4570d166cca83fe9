import type { BlobName } from '../shared/index.js';

/** Blob names of a repository (FORMAT.md §0). Chunks and indexes are sharded by the first two hex digits. */
export const CONFIG_BLOB = 'config' as BlobName;
export const KEYS_PREFIX = 'keys/';
export const CHUNKS_PREFIX = 'chunks/';
export const INDEXES_PREFIX = 'indexes/';
export const POINTS_PREFIX = 'points/';
export const LOCKS_PREFIX = 'locks/';
export const VERIFICATIONS_PREFIX = 'verifications/';

export const keyBlob = (keyId: string) => `${KEYS_PREFIX}${keyId}` as BlobName;
export const chunkBlob = (hex: string) => `${CHUNKS_PREFIX}${hex.slice(0, 2)}/${hex}` as BlobName;
export const indexBlob = (hex: string) => `${INDEXES_PREFIX}${hex.slice(0, 2)}/${hex}` as BlobName;
export const pointBlob = (id: string) => `${POINTS_PREFIX}${id}` as BlobName;
export const lockBlob = (scope: string, name: string) => `${LOCKS_PREFIX}${scope}/${name}` as BlobName;
/** verifications/<point id>/<ms since epoch, 15 digits>-<ok|failed>: the outcome is in the name (list, no reads). */
export const verificationBlob = (pointId: string, timeMs: number, ok: boolean) =>
  `${VERIFICATIONS_PREFIX}${pointId}/${String(timeMs).padStart(15, '0')}-${ok ? 'ok' : 'failed'}` as BlobName;

/** The last path segment of a blob name (the object's id). */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}
