import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { CofferError } from '../../shared/index.js';
import { Repository, type KdfCost } from '../../repository/index.js';
import { parseInteger, parseSize, readPassword, type CommandKit, type CommonOpts } from '../kit/index.js';

type InitOpts = CommonOpts & {
  chunkSize: string;
  compressionLevel: string;
  kdfCost?: string;
  copyOf?: string;
  appendOnly?: boolean;
};

/** `coffer init`: a new repository (or a replica of one: --copy-of), optionally append-only (FORMAT.md §9). */
export function initCommand(program: Command, kit: CommandKit): void {
  const { deps } = kit;
  kit
    .common(program.command('init').description('create a new repository'))
    .addOption(new Option('--chunk-size <bytes>', 'chunk size: a power of two from 64K to 8M').default('1M'))
    .addOption(new Option('--compression-level <n>', 'zstd level (-7..19)').default('2'))
    .addOption(new Option('--kdf-cost <N>', 'scrypt N for the key (power of two)').hideHelp())
    .option(
      '--copy-of <repo>',
      'create a replica of another repository (same keys and chunk ids: `copy` then moves blobs unchanged)',
    )
    .option(
      '--append-only',
      'Coffer never deletes anything in this repository (forget/prune keep all); cannot be undone by Coffer',
    )
    .action(async (o: InitOpts) => {
      await refuseFileLocation(o.repo);
      const password = await readPassword(deps, o.passwordFile, 'COFFER_PASSWORD', { confirm: true });
      const source = o.copyOf ? await deps.openStore(o.copyOf, { create: false }) : undefined;
      const store = await deps.openStore(o.repo, { create: true });
      if (o.appendOnly) await Repository.markAppendOnly(store); // the marker first (FORMAT.md §9)
      const kdf: KdfCost = o.kdfCost ? { N: parseInteger(o.kdfCost, '--kdf-cost') } : {};
      const repo = source
        ? await Repository.initCopyOf(store, source, password)
        : await Repository.init(store, password, {
            chunkSizeBytes: parseSize(o.chunkSize, '--chunk-size'),
            zstdLevel: parseInteger(o.compressionLevel, '--compression-level'),
            kdf,
          });
      if (o.json)
        kit.writeJson({
          id: repo.id,
          location: store.location,
          chunkSizeBytes: repo.chunkSizeBytes,
          formatVersion: repo.config.formatVersion,
          appendOnly: o.appendOnly === true,
        });
      else kit.write(`created repository ${repo.id} at ${store.location}\n`);
      // the password is the only key: said once, where the repository is made (stderr, so --json stays clean)
      if (!o.quiet)
        deps.stderr.write(
          'warning: keep the repository password safe (a password manager, a sealed copy): Coffer cannot recover ' +
            'it, and a lost password means every restore point in this repository is lost\n',
        );
    });
}

/** `init --repo FILE` (an existing file, or a path below one): a coded USAGE error, not `IO ... EEXIST mkdir`. */
async function refuseFileLocation(location: string): Promise<void> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return; // azure://, s3:// ...
  for (let p = resolve(location); ; p = dirname(p)) {
    const st = await stat(p).catch(() => undefined);
    if (st && !st.isDirectory())
      throw new CofferError('USAGE', `cannot create a repository at ${location}: ${p} is a file, not a directory`, {
        hint: 'give a directory that does not exist yet or is empty (or azure://... / s3://...)',
      });
    if (st || dirname(p) === p) return;
  }
}
