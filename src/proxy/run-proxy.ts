import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import { TOOL_VERSION } from '../engine/index.js';
import type { ProxyRunOptions } from '../jobs/index.js';
import { CofferError, type Logger } from '../shared/index.js';
import { ProxyAgent, type Capabilities } from './proxy-agent.js';
import { ProxyClient } from './proxy-client.js';
import type { ProxyDeps } from './proxy-job-deps.js';

export interface ProxyOptions extends ProxyRunOptions {
  /** where the log goes (JSON lines) */
  logStream: Writable;
}

async function readSecret(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new CofferError('USAGE', `cannot read the ${what} ${file}: ${(e as Error).message}`);
  }
}

/** `coffer proxy`: a backup proxy (data mover) that runs jobs of a Coffer server until deps.signal aborts. */
export async function runProxy(opts: ProxyOptions, deps: ProxyDeps): Promise<void> {
  const token = (await readSecret(opts.tokenFile, 'token file')).toString('utf8').trim();
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(token))
    throw new CofferError('USAGE', `the token file ${opts.tokenFile} does not hold a token (cft_...)`);
  const ca = opts.caFile ? await readSecret(opts.caFile, 'CA file') : undefined;
  const name =
    opts.name ??
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 64);
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    const record = { time: new Date().toISOString(), level, service: 'coffer-proxy', proxy: name, msg, ...fields };
    opts.logStream.write(`${JSON.stringify(record)}\n`);
  };
  const logger: Logger = { info: line('info'), warn: line('warn'), debug: () => undefined };
  const capabilities: Capabilities = {
    kinds: opts.kinds,
    transports: opts.transports,
    repositories: opts.repositories,
    vcenters: opts.vcenters,
    clusters: opts.clusters,
    datastores: opts.datastores,
  };
  const client = new ProxyClient({ server: opts.server, token, ca });
  const agent = new ProxyAgent(
    client,
    { name, concurrency: opts.concurrency, capabilities, pollMs: opts.pollMs, heartbeatMs: opts.heartbeatMs },
    deps,
    logger,
  );
  if (opts.pidFile) await writeFile(opts.pidFile, `${process.pid}\n`);
  logger.info('coffer proxy starting', { server: opts.server, version: TOOL_VERSION, capabilities });
  try {
    await agent.run();
  } finally {
    if (opts.pidFile) await rm(opts.pidFile, { force: true });
  }
  logger.info('coffer proxy stopped');
}
