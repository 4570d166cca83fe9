import type { Command } from 'commander';
import { CofferError } from '../../shared/index.js';
import { parseInteger, readPassword, type CliDeps, type CommandKit, type ServerCommands } from '../kit/index.js';

/** --catalog: only PostgreSQL URLs (SQLite is the default, in --data) */
function catalogUrl(s: string): string {
  if (!/^postgres(ql)?:\/\/./.test(s))
    throw new CofferError('USAGE', `--catalog must be a postgres:// or postgresql:// URL, not ${JSON.stringify(s)}`);
  return s;
}

function leaseSeconds(s: string): number {
  const n = parseInteger(s, '--lease-seconds');
  if (n < 1 || n > 3600) throw new CofferError('USAGE', `--lease-seconds must be 1 to 3600, not ${n}`);
  return n;
}

function serverOf(deps: CliDeps): ServerCommands {
  if (!deps.server) throw new CofferError('NOT_AVAILABLE', 'the server is not available in this build of the CLI');
  return deps.server;
}

/** `coffer server`, `coffer token create`, `coffer user add` (docs/DESIGN.md §Server). */
export function serverCommand(program: Command, kit: CommandKit): void {
  program
    .command('server')
    .description('run the Coffer server: policies, schedules, job queue, REST API and web console')
    .requiredOption('--listen <host:port>', 'address to listen on, e.g. 127.0.0.1:8080')
    .requiredOption('--data <dir>', 'data directory (catalog); a fresh directory is an empty server')
    .option(
      '--catalog <url>',
      'keep the catalog in PostgreSQL (postgres://USER[:PASSWORD]@HOST:PORT/DB), shared by server replicas; ' +
        'default: DATA/catalog.db (SQLite)',
    )
    .option('--lease-seconds <n>', 'how long a job claim holds without renewal before another replica takes it', '30')
    .option('--config <file>', 'server config file (JSON: repositories, inventory, limits, notifications)')
    .option('--no-local-proxy', 'run no job in this process: only `coffer proxy` processes run jobs')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--pid-file <file>', 'write the process id here while running')
    .action(
      async (o: {
        listen: string;
        data: string;
        catalog?: string;
        leaseSeconds: string;
        localProxy: boolean;
        config?: string;
        tlsCert?: string;
        tlsKey?: string;
        pidFile?: string;
      }) => {
        await serverOf(kit.deps).run({
          listen: o.listen,
          dataDir: o.data,
          ...(o.catalog ? { catalogUrl: catalogUrl(o.catalog) } : {}),
          leaseSeconds: leaseSeconds(o.leaseSeconds),
          ...(o.localProxy === false ? { localProxy: false } : {}),
          ...(o.config ? { configFile: o.config } : {}),
          ...(o.tlsCert ? { tlsCert: o.tlsCert } : {}),
          ...(o.tlsKey ? { tlsKey: o.tlsKey } : {}),
          ...(o.pidFile ? { pidFile: o.pidFile } : {}),
        });
      },
    );

  const token = program.command('token').description('manage API tokens of a Coffer server');
  token
    .command('create')
    .description('create an API token; prints it as the last line (it is stored hashed and cannot be shown again)')
    .requiredOption('--data <dir>', 'the server data directory')
    .option('--catalog <url>', "the server's PostgreSQL catalog (postgres://...), when it has one")
    .requiredOption('--role <role>', 'admin, operator, restore-operator, viewer, or proxy (for `coffer proxy`)')
    .option('--name <name>', 'a name for the token', 'cli')
    .option('--json', 'print a JSON document')
    .action(async (o: { data: string; catalog?: string; role: string; name: string; json?: boolean }) => {
      const t = await serverOf(kit.deps).createToken({
        dataDir: o.data,
        role: o.role,
        name: o.name,
        ...(o.catalog ? { catalogUrl: catalogUrl(o.catalog) } : {}),
      });
      if (o.json) kit.write(JSON.stringify(t) + '\n');
      else kit.write(`created token ${t.id} (${t.name}, role ${t.role}); it is shown once:\n${t.token}\n`);
    });

  const user = program.command('user').description('manage local users of a Coffer server');
  user
    .command('add')
    .description('add a user; the password from $COFFER_USER_PASSWORD or --password-file')
    .requiredOption('--data <dir>', 'the server data directory')
    .requiredOption('--name <username>', 'user name')
    .requiredOption('--role <role>', 'admin, operator, restore-operator or viewer')
    .option('--password-file <file>', 'read the password from FILE')
    .option('--catalog <url>', "the server's PostgreSQL catalog (postgres://...), when it has one")
    .action(async (o: { data: string; catalog?: string; name: string; role: string; passwordFile?: string }) => {
      const password = await readPassword(kit.deps, o.passwordFile, 'COFFER_USER_PASSWORD');
      await serverOf(kit.deps).addUser({
        dataDir: o.data,
        username: o.name,
        password,
        role: o.role,
        ...(o.catalog ? { catalogUrl: catalogUrl(o.catalog) } : {}),
      });
      kit.write(`added user ${o.name} (${o.role})\n`);
    });

  const catalog = program
    .command('catalog')
    .description("back up and restore a Coffer server's catalog (policies, users, tokens, jobs, audit log)");
  kit
    .output(
      catalog
        .command('backup')
        .description('copy DATA/catalog.db consistently (SQLite online backup); safe while the server runs'),
    )
    .requiredOption('--data <dir>', 'the server data directory')
    .requiredOption('--to <file>', 'the backup file to write')
    .option('--force', 'overwrite an existing backup file')
    .action(async (o: { data: string; to: string; force?: boolean; json?: boolean }) => {
      const r = await serverOf(kit.deps).backupCatalog({ dataDir: o.data, to: o.to, force: Boolean(o.force) });
      if (o.json) kit.writeJson(r);
      else
        kit.write(
          `backed up the catalog of ${o.data} to ${r.file} (${r.sizeBytes} bytes, schema ${r.schemaVersion})\n`,
        );
    });
  kit
    .output(
      catalog
        .command('restore')
        .description('put a catalog backup in place as DATA/catalog.db (stop the server first)'),
    )
    .requiredOption('--data <dir>', 'the server data directory')
    .requiredOption('--from <file>', 'a file written by `coffer catalog backup`')
    .option('--force', 'replace an existing catalog')
    .action(async (o: { data: string; from: string; force?: boolean; json?: boolean }) => {
      const r = await serverOf(kit.deps).restoreCatalog({ dataDir: o.data, from: o.from, force: Boolean(o.force) });
      if (o.json) kit.writeJson(r);
      else kit.write(`restored the catalog of ${o.data} from ${o.from} (schema ${r.schemaVersion})\n`);
    });
}
