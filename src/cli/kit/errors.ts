import { CommanderError } from 'commander';
import { CofferError, asCofferError } from '../../shared/index.js';
import { EXIT_CODES, EXIT_OK } from '../exit-codes.js';
import type { CliDeps } from './deps.js';

/**
 * The one place where a failed command becomes output and an exit code: commander's usage errors are USAGE (2);
 * with --json the error is a `{"error": {code, message, details}}` document on stdout, else a line on stderr.
 */
export function reportFailure(e: unknown, deps: CliDeps, jsonMode: boolean): number {
  const out = (s: string) => deps.stdout.write(s);
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
      return EXIT_OK;
    const err = new CofferError('USAGE', e.message.replace(/^error: /, ''));
    if (jsonMode) out(JSON.stringify({ error: err.toJSON() }) + '\n');
    return EXIT_CODES.USAGE;
  }
  const err = asCofferError(e);
  // `reported`: the command already printed its JSON result (e.g. a verify report with problems): one document only
  if (jsonMode && !err.details.reported) out(JSON.stringify({ error: err.toJSON() }) + '\n');
  else {
    deps.stderr.write(`coffer: error [${err.code}]: ${err.message}\n`);
    if (err.hint) deps.stderr.write(`  hint: ${err.hint}\n`);
    if (err.code === 'INTERNAL' && err.stack) deps.stderr.write(`${err.stack}\n`);
  }
  return EXIT_CODES[err.code] ?? 1;
}
