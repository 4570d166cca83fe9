export * from './block-source.js';
export * from './file-source.js';
export { NbdSource, parseNbdUri } from './nbd-source.js';
export { VmdkSource } from './vmdk/vmdk-source.js';
export { openSource, sniffFormat, type OpenSourceOptions, type ImageFormat } from './open-source.js';
