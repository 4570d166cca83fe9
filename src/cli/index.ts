export { runCli } from './program.js';
export { parseSize, parseInteger, promptHidden, type CliDeps, type ServerCommands } from './kit/index.js';
export { EXIT_CODES } from './exit-codes.js';
