import type { Command } from 'commander';
import { CofferError } from '../../shared/index.js';
import { parseInteger, type CommandKit } from '../kit/index.js';

/** restores to files stay on the server: their targets are below its restore directories; whole VMs go to vCenter */
const KINDS = ['backup', 'verify', 'prune', 'check', 'restore-vm'];
const TRANSPORTS = ['disk', 'http', 'nbd', 'hotadd'];

/** a comma-separated list; `any` (or absent) is null: no restriction */
function list(s: string | undefined, what: string, allowed?: readonly string[]): string[] | null {
  if (s === undefined || s === 'any') return null;
  const items = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const bad = allowed ? items.filter((x) => !allowed.includes(x)) : [];
  if (bad.length || items.length === 0)
    throw new CofferError(
      'USAGE',
      `${what} must be a comma-separated list${allowed ? ` of ${allowed.join(', ')}` : ''}, not ${JSON.stringify(s)}`,
    );
  return items;
}

function bounded(s: string, what: string, min: number, max: number): number {
  const n = parseInteger(s, what);
  if (n < min || n > max) throw new CofferError('USAGE', `${what} must be ${min} to ${max}, not ${n}`);
  return n;
}

/** `coffer proxy` (docs/DESIGN.md §Proxies and placement, docs/OPERATIONS.md): a backup proxy of a Coffer server. */
export function proxyCommand(program: Command, kit: CommandKit): void {
  program
    .command('proxy')
    .description('run a backup proxy: registers with a Coffer server, pulls its jobs and runs them here')
    .requiredOption('--server <url>', 'the server, https://HOST:PORT (plain http only to 127.0.0.1)')
    .requiredOption('--token-file <file>', 'a file holding a token of role proxy (`coffer token create --role proxy`)')
    .option('--name <name>', 'this proxy in the server (default: the host name)')
    .option('--concurrency <n>', 'jobs run at once', '2')
    .option('--kinds <list>', `job kinds it runs (${KINDS.join(', ')})`, 'backup,verify,prune')
    .option('--transports <list>', `how it reads VMs (${TRANSPORTS.join(', ')})`, 'disk,http')
    .option('--repositories <list>', "the server's repositories it can write (default: any)")
    .option('--vcenters <list>', "the server's vCenters it reaches (default: any)")
    .option('--clusters <list>', 'the vSphere clusters whose VMs it reads (default: any)')
    .option('--datastores <list>', 'the datastores it reaches (default: any)')
    .option('--ca-file <file>', "the CA certificate (PEM) that signed the server's TLS certificate")
    .option('--poll-ms <n>', 'how often it asks for work while it has a free slot', '1000')
    .option('--heartbeat-ms <n>', "heartbeat period (default: a third of the server's job lease)")
    .option('--pid-file <file>', 'write the process id here while running')
    .action(
      async (o: {
        server: string;
        tokenFile: string;
        name?: string;
        concurrency: string;
        kinds: string;
        transports: string;
        repositories?: string;
        vcenters?: string;
        clusters?: string;
        datastores?: string;
        caFile?: string;
        pollMs: string;
        heartbeatMs?: string;
        pidFile?: string;
      }) => {
        if (!kit.deps.proxy)
          throw new CofferError('NOT_AVAILABLE', 'the proxy is not available in this build of the CLI');
        if (o.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(o.name))
          throw new CofferError('USAGE', `--name must be 1-64 letters, digits, ".", "_" or "-", not ${o.name}`);
        await kit.deps.proxy.run({
          server: o.server,
          tokenFile: o.tokenFile,
          caFile: o.caFile,
          name: o.name,
          concurrency: bounded(o.concurrency, '--concurrency', 1, 256),
          kinds: list(o.kinds, '--kinds', KINDS)!,
          transports: list(o.transports, '--transports', TRANSPORTS) ?? TRANSPORTS,
          repositories: list(o.repositories, '--repositories'),
          vcenters: list(o.vcenters, '--vcenters'),
          clusters: list(o.clusters, '--clusters'),
          datastores: list(o.datastores, '--datastores'),
          pollMs: bounded(o.pollMs, '--poll-ms', 50, 60_000),
          heartbeatMs: o.heartbeatMs === undefined ? undefined : bounded(o.heartbeatMs, '--heartbeat-ms', 50, 600_000),
          pidFile: o.pidFile,
        });
      },
    );
}
