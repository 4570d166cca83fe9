export * from './blob-store.js';
export { LocalBlobStore } from './local/local-blob-store.js';
export { MemoryBlobStore } from './memory/memory-blob-store.js';
