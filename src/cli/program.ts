import { Command } from 'commander';
import { TOOL_VERSION } from '../engine/index.js';
import { COMMANDS } from './commands/index.js';
import { EXIT_OK } from './exit-codes.js';
import { createKit, reportFailure, type CliDeps } from './kit/index.js';

/** Runs the coffer CLI; returns the exit code (never calls process.exit). */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  let jsonMode = argv.includes('--json');
  const program = buildProgram(deps, (v) => (jsonMode = v));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    return reportFailure(e, deps, jsonMode);
  }
}

/** The `coffer` program: every command of src/cli/commands/ with one kit (src/cli/kit/). */
export function buildProgram(deps: CliDeps, setJson: (v: boolean) => void): Command {
  const program = new Command('coffer')
    .description('Backup and recovery for virtual machines: deduplicated, compressed, encrypted disk images')
    .version(TOOL_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => deps.stdout.write(s), writeErr: (s) => deps.stderr.write(s) })
    .showSuggestionAfterError(true);
  const kit = createKit(deps, setJson);
  for (const define of COMMANDS) define(program, kit);
  return program;
}
