export { runCli, parseSize, parseInteger } from './program.js';
export type { CliDeps } from './context.js';
export { EXIT_CODES } from './exit-codes.js';
