export * from './block-source.js';
export * from './file-source.js';
export { NbdSource, parseNbdUri } from './nbd-source.js';
export { VmdkSource } from './vmdk/vmdk-source.js';
export {
  streamOptimizedVmdk,
  type StreamOptimizedOptions,
  type StreamOptimizedStats,
} from './vmdk/stream-optimized-writer.js';
export { openSource, sniffFormat, type OpenSourceOptions, type ImageFormat } from './open-source.js';
