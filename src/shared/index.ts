export * from './errors.js';
export * from './op.js';
export * from './units.js';
export * from './clock.js';
export * from './logger.js';
export * from './ids.js';
export * from './task-window.js';
export * from './retry.js';
