export * from './blob-store.js';
export * from './cloud-store.js';
export * from './capabilities.js';
export { ForwardingBlobStore } from './forwarding-blob-store.js';
export { LocalBlobStore, translate as localStoreError } from './local/local-blob-store.js';
export { MemoryBlobStore } from './memory/memory-blob-store.js';
export { RetryingBlobStore, type RetryPolicy } from './retrying-blob-store.js';
export { isCloudSpec, openCloudStore } from './open-cloud-store.js';
// The cloud backends load their SDKs on demand (open-cloud-store.ts); only their types are exported here.
export type { AzureBlobStore } from './azure/azure-blob-store.js';
export { ThrottledBlobStore } from './throttled-blob-store.js';
export { AppendOnlyBlobStore, APPEND_ONLY_BLOB } from './append-only-blob-store.js';
export { CachingBlobStore } from './caching-blob-store.js';
