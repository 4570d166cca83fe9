export * from './compression.js';
export * from './envelope.js';
export * from './fixed-index.js';
export * from './json-check.js';
export * from './key-file.js';
export * from './manifest.js';
export * from './repo-config.js';
