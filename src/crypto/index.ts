export * from './aead.js';
export * from './kdf.js';
export * from './master-key.js';
