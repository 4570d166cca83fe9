export { runCli, parseSize, parseInteger } from './program.js';
export type { CliDeps, ServerCommands } from './context.js';
export { EXIT_CODES } from './exit-codes.js';
