import type { BlobName } from '../shared/index.js';

/** Blob names of a repository (FORMAT.md §0). Chunks and indexes are sharded by the first two hex digits. */
export const CONFIG_BLOB = 'config' as BlobName;
export const KEYS_PREFIX = 'keys/';
export const CHUNKS_PREFIX = 'chunks/';
export const INDEXES_PREFIX = 'indexes/';
export const POINTS_PREFIX = 'points/';
export const LOCKS_PREFIX = 'locks/';
export const VERIFICATIONS_PREFIX = 'verifications/';
export const HOLDS_PREFIX = 'holds/';
export const CHECKS_PREFIX = 'checks/';
export const INDICATORS_PREFIX = 'indicators/';
export const CONDEMNED_PREFIX = 'gc/condemned/';
export const RESCUE_PREFIX = 'gc/rescue/';
/** The lease scope of garbage collection (prune): one at a time; its operation says when it deletes. */
export const GC_SCOPE = 'gc';

export const keyBlob = (keyId: string) => `${KEYS_PREFIX}${keyId}` as BlobName;
export const chunkBlob = (hex: string) => `${CHUNKS_PREFIX}${hex.slice(0, 2)}/${hex}` as BlobName;
export const indexBlob = (hex: string) => `${INDEXES_PREFIX}${hex.slice(0, 2)}/${hex}` as BlobName;
export const pointBlob = (id: string) => `${POINTS_PREFIX}${id}` as BlobName;
export const lockBlob = (scope: string, name: string) => `${LOCKS_PREFIX}${scope}/${name}` as BlobName;
/** verifications/<point id>/<ms since epoch, 15 digits>-<ok|failed>: the outcome is in the name (list, no reads). */
export const verificationBlob = (pointId: string, timeMs: number, ok: boolean) =>
  `${VERIFICATIONS_PREFIX}${pointId}/${String(timeMs).padStart(15, '0')}-${ok ? 'ok' : 'failed'}` as BlobName;

/** checks/<point id>/<ms since epoch, 15 digits>-<ok|failed>: recoverability checks (FORMAT.md §8.1). */
export const checkBlob = (pointId: string, timeMs: number, ok: boolean) =>
  `${CHECKS_PREFIX}${pointId}/${String(timeMs).padStart(15, '0')}-${ok ? 'ok' : 'failed'}` as BlobName;

/** indicators/<point id>/<ms, 15 digits>-<found|none>: file-level ransomware indicators (FORMAT.md §8.2). */
export const indicatorsBlob = (pointId: string, timeMs: number, found: boolean) =>
  `${INDICATORS_PREFIX}${pointId}/${String(timeMs).padStart(15, '0')}-${found ? 'found' : 'none'}` as BlobName;

/** holds/<point id>/<ms, 15 digits>-<8 hex> (FORMAT.md §10): several holds on a point may coexist. */
export const holdBlob = (pointId: string, timeMs: number, nonce: string) =>
  `${HOLDS_PREFIX}${pointId}/${String(timeMs).padStart(15, '0')}-${nonce}` as BlobName;
/** gc/condemned/<ms, 15 digits>-<8 hex>: one generation of condemned (unreferenced) objects (FORMAT.md §11). */
export const condemnedBlob = (timeMs: number, nonce: string) =>
  `${CONDEMNED_PREFIX}${String(timeMs).padStart(15, '0')}-${nonce}` as BlobName;
/** gc/rescue/<lease holder>/<ms, 15 digits>-<8 hex>: objects a running writer uses although they were condemned. */
export const rescueBlob = (holder: string, timeMs: number, nonce: string) =>
  `${RESCUE_PREFIX}${holder}/${String(timeMs).padStart(15, '0')}-${nonce}` as BlobName;

/** The last path segment of a blob name (the object's id). */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}
