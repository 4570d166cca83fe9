export { stderrLogger, type CliDeps, type ServerCommands } from './deps.js';
export { readPassword, secondRepositoryPassword } from './password.js';
export { parseInteger, parseOptionalInteger, parseRate, parseSize } from './parse.js';
export {
  addOutputOptions,
  addPasswordOption,
  addTlsOptions,
  tlsPolicy,
  type CommonOpts,
  type OutputOpts,
} from './options.js';
export { ProgressReporter, type ProgressSink } from './progress.js';
export { createKit, type CommandKit } from './kit.js';
export { reportFailure } from './errors.js';
export { printBackupResult, writePrune } from './summaries.js';
export { promptHidden, type TtyInput } from './prompt.js';
