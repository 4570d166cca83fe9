export * from './chunk-codec.js';
export * from './id-set.js';
export * from './layout.js';
export * from './lease.js';
export * from './object-codec.js';
export * from './repository.js';
export type { KdfCost } from './key-ring.js';
export * from './holds.js';
export * from './gc-sets.js';
