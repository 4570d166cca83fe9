export { runCli } from './program.js';
export { parseSize, parseInteger, type CliDeps, type ServerCommands } from './kit/index.js';
export { EXIT_CODES } from './exit-codes.js';
