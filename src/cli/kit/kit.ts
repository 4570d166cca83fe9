import type { Command } from 'commander';
import type { CodecParams, CodecPool, UseCaseContext } from '../../engine/index.js';
import { Repository } from '../../repository/index.js';
import { ThrottledBlobStore } from '../../storage/index.js';
import { CofferError, type Logger } from '../../shared/index.js';
import { stderrLogger, type CliDeps } from './deps.js';
import { REPO_OPTION_HELP, addOutputOptions, addPasswordOption, type CommonOpts, type OutputOpts } from './options.js';
import { readPassword } from './password.js';
import { ProgressReporter } from './progress.js';

/**
 * What every command module gets (src/cli/commands/*.ts): the outside world, options, the repository opener, output.
 */
export interface CommandKit {
  deps: CliDeps;
  /** writes to stdout */
  write(s: string): void;
  /** a JSON document on stdout (one line) */
  writeJson(value: unknown): void;
  /** the stderr logger of a command (-q: warnings only) */
  logger(o: OutputOpts): Logger;
  /** adds --repo, --password-file, --json, --no-progress, -q to a command */
  common(c: Command): Command;
  /** --json, --no-progress, -q for a command without --repo (copy); --json also switches error output to JSON */
  output(c: Command): Command;
  /**
   * opens the repository named by --repo; `prestartPool`: the next pool asked for is created now, its keys given once
   * derived; 'start' also starts its workers at once (they load while scrypt runs), for a job large by its nature
   */
  openRepo(o: CommonOpts, logger: Logger, prestartPool?: boolean | 'start'): Promise<Repository>;
  /** opens a further repository (copy's source and target, repair's copy) with a password already read */
  openRepoAt(
    location: string,
    password: string,
    logger: Logger,
    opts?: { limitUploadBytesPerSecond?: number | undefined },
  ): Promise<Repository>;
  /** what the engine's use cases get: codec workers (the prestarted ones first) and the process's signal */
  useCase: UseCaseContext;
  /** runs fn with a codec pool (the prestarted one if any) and closes it afterwards */
  withPool<T>(repo: Repository, fn: (pool: CodecPool) => Promise<T>): Promise<T>;
  progressOn(o: OutputOpts): boolean;
  /** progress on stderr unless --no-progress or -q; `ttyOnly`: nothing when stderr is not a terminal */
  progress(o: OutputOpts, label: string, opts?: { unit?: 'bytes' | 'items'; ttyOnly?: boolean }): ProgressReporter;
  /** closes a prestarted pool the command never asked for (it failed before, e.g. a wrong password or point) */
  release(): Promise<void>;
}

/** The kit of one CLI run; `setJson` tells the error printer that --json was given. */
export function createKit(deps: CliDeps, setJson: (v: boolean) => void): CommandKit {
  const write = (s: string) => deps.stdout.write(s);
  const jsonHook = (c: Command) => c.exitOverride().hook('preAction', (cmd) => setJson(Boolean(cmd.opts().json)));
  // With `prestartPool`, the pool exists before the key (its workers start on demand, or at once with 'start': then
  // they load while scrypt derives the key); the next pool asked for is that one. A pool left unused by a failing
  // command is closed by release() (runCli's finally).
  let early: { pool: CodecPool; give: (p: CodecParams) => void } | undefined;
  const createPool = (params: CodecParams): CodecPool => {
    const pool = early?.pool ?? deps.createPool(params);
    early = undefined;
    return pool;
  };
  const progressOn = (o: OutputOpts) => o.progress !== false && !o.quiet;
  return {
    deps,
    write,
    writeJson: (value) => write(JSON.stringify(value) + '\n'),
    logger: (o) => stderrLogger(deps, o.quiet),
    common: (c) =>
      jsonHook(
        addOutputOptions(addPasswordOption(c.option('--repo <path>', `${REPO_OPTION_HELP} (default: $COFFER_REPO)`))),
      ).hook('preAction', (cmd) => {
        // --repo, else $COFFER_REPO (an empty variable counts as unset)
        if (cmd.opts().repo !== undefined) return;
        const env = deps.env.COFFER_REPO;
        if (!env) throw new CofferError('USAGE', "required option '--repo <path>' not specified (or set COFFER_REPO)");
        cmd.setOptionValue('repo', env);
      }),
    output: (c) => jsonHook(addOutputOptions(c)),
    async openRepo(o, logger, prestartPool = false) {
      if (prestartPool) {
        let give!: (p: CodecParams) => void;
        early = { pool: deps.createPool(new Promise<CodecParams>((r) => (give = r))), give };
        // a job that is large by its nature (a disk restore): the workers load now, while scrypt derives the key
        if (prestartPool === 'start') early.pool.startNow();
      }
      const store = await deps.openStore(o.repo, { create: false });
      const repo = await Repository.open(store, await readPassword(deps, o.passwordFile), { logger });
      early?.give(repo.codecParams);
      return repo;
    },
    async openRepoAt(location, password, logger, opts = {}) {
      const store = await deps.openStore(location, { create: false });
      const rate = opts.limitUploadBytesPerSecond;
      return Repository.open(rate ? new ThrottledBlobStore(store, rate) : store, password, { logger });
    },
    useCase: { createPool, signal: deps.signal },
    async withPool(repo, fn) {
      const pool = createPool(repo.codecParams);
      try {
        return await fn(pool);
      } finally {
        await pool.close();
      }
    },
    progressOn,
    async release() {
      const unused = early?.pool;
      early = undefined;
      await unused?.close();
    },
    progress: (o, label, opts = {}) =>
      new ProgressReporter(
        deps.stderr as never,
        label,
        progressOn(o) && (!opts.ttyOnly || deps.stderr.isTTY === true),
        opts.unit ?? 'bytes',
      ),
  };
}
