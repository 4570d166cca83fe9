import { blobStoreSuite } from '../testing/blob-store-suite.js';
import { MemoryBlobStore } from './memory-blob-store.js';

blobStoreSuite('memory', async () => ({ store: new MemoryBlobStore(), cleanup: async () => undefined }));
