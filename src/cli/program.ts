import { Command } from 'commander';
import { TOOL_VERSION } from '../engine/index.js';
import { COMMANDS } from './commands/index.js';
import { EXIT_OK } from './exit-codes.js';
import { createKit, reportFailure, type CliDeps, type CommandKit } from './kit/index.js';

/** Runs the coffer CLI; returns the exit code (never calls process.exit). */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  let jsonMode = argv.includes('--json');
  const kit = createKit(deps, (v) => (jsonMode = v));
  const program = buildProgram(deps, kit);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    return reportFailure(e, deps, jsonMode);
  } finally {
    await kit.release();
  }
}

/** The `coffer` program: every command of src/cli/commands/ with one kit (src/cli/kit/). */
export function buildProgram(deps: CliDeps, kit: CommandKit): Command {
  const program = new Command('coffer')
    .description('Backup and recovery for virtual machines: deduplicated, compressed, encrypted disk images')
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => deps.stdout.write(s), writeErr: (s) => deps.stderr.write(s) })
    .showSuggestionAfterError(true);
  for (const define of COMMANDS) define(program, kit);
  return program;
}
