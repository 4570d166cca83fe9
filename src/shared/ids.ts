/** Branded ids: a bare string or buffer cannot be passed where an id is expected. */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** 32-byte keyed digest of a chunk's plaintext, lower-case hex (64 chars). */
export type ChunkId = Brand<string, 'ChunkId'>;
/** Restore point id: 32 lower-case hex chars. */
export type RestorePointId = Brand<string, 'RestorePointId'>;
/** Name of a blob in a BlobStore ('chunks/ab/ab12...'). */
export type BlobName = Brand<string, 'BlobName'>;

export const HEX64 = /^[0-9a-f]{64}$/;
export const HEX32 = /^[0-9a-f]{32}$/;

/** The ChunkId of a 32-byte binary id (as stored in fixed indexes and IdSets). */
export function chunkIdOf(id: Uint8Array): ChunkId {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex') as ChunkId;
}

/** A hex string known to be a chunk id (from an index, a listing, a verification record). */
export function asChunkId(hex: string): ChunkId {
  return hex as ChunkId;
}
