export * from './block-source.js';
export * from './file-source.js';
export { openSource } from './open-source.js';
