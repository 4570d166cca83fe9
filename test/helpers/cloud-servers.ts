import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { freePort } from './servers.js';

const ROOT = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../../..');

/** Azurite's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface OwnedServer {
  port: number;
  pid: number;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

async function waitPort(port: number, child: ChildProcess, what: string, log: () => string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited: ${log()}`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port}: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function own(child: ChildProcess, port: number, pidFile: string): OwnedServer {
  writeFileSync(pidFile, String(child.pid));
  return {
    port,
    pid: child.pid!,
    child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** Is it our server that answers on the port (not another process that took the port meanwhile)? */
async function answersAs(
  port: number,
  child: ChildProcess,
  path: string,
  check: (res: Response, body: string) => boolean,
): Promise<boolean> {
  await new Promise((r) => setTimeout(r, 100));
  if (child.exitCode !== null || child.signalCode !== null) return false;
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return check(res, await res.text());
  } catch {
    return false;
  }
}

/**
 * freePort() releases the port before the server binds it; on a shared machine another process can take it in
 * between. Start, check who answers, and try again on a new port (our own failed child is stopped by pid).
 */
async function startChecked<T extends OwnedServer>(
  fixedPort: number | undefined,
  start: (port: number) => Promise<T>,
  isOurs: (s: T) => Promise<boolean>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    let s: T | undefined;
    try {
      s = await start(port);
      if (await isOurs(s)) return s;
    } catch (e) {
      if (attempt >= 3) throw e;
    }
    await s?.stop('SIGKILL');
    if (attempt >= 3) throw new Error(`could not start a server on 127.0.0.1 (port ${port} taken?)`);
  }
}

/**
 * Azurite (blob service only) as our own child process on 127.0.0.1, data under `dir` (survives a restart on
 * the same dir and port). `accounts`: AZURITE_ACCOUNTS (e.g. "region1:KEY1") for extra accounts.
 */
export async function startAzurite(
  dir: string,
  opts: { port?: number; accounts?: string } = {},
): Promise<OwnedServer & { endpoint: string; connectionString: string }> {
  return startChecked(
    opts.port,
    (port) => startAzuriteOn(dir, port, opts.accounts),
    (s) =>
      answersAs(s.port, s.child, `/${AZURITE_ACCOUNT}?comp=list`, (res) =>
        (res.headers.get('server') ?? '').startsWith('Azurite'),
      ),
  );
}

async function startAzuriteOn(
  dir: string,
  port: number,
  accounts: string | undefined,
): Promise<OwnedServer & { endpoint: string; connectionString: string }> {
  mkdirSync(dir, { recursive: true });
  let log = '';
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'node_modules/azurite/dist/src/blob/main.js'),
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      dir,
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
      '--silent',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(accounts ? { AZURITE_ACCOUNTS: accounts } : {}) } },
  );
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitPort(port, child, 'azurite', () => log);
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    ...own(child, port, join(dir, `azurite-${port}.pid`)),
    endpoint,
    connectionString:
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};` +
      `AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`,
  };
}

/** s3rver (credentials S3RVER/S3RVER) as our own child process on 127.0.0.1, data under `dir`. */
export async function startS3rver(
  dir: string,
  opts: { port?: number } = {},
): Promise<OwnedServer & { endpoint: string; env: Record<string, string> }> {
  return startChecked(
    opts.port,
    (port) => startS3rverOn(dir, port),
    (s) => answersAs(s.port, s.child, '/', (_res, body) => body.includes('ListAllMyBucketsResult')),
  );
}

async function startS3rverOn(
  dir: string,
  port: number,
): Promise<OwnedServer & { endpoint: string; env: Record<string, string> }> {
  mkdirSync(dir, { recursive: true });
  let log = '';
  const script =
    `const S3rver = require(${JSON.stringify(join(ROOT, 'node_modules/s3rver'))});\n` +
    `new S3rver({ address: '127.0.0.1', port: ${port}, silent: true, directory: ${JSON.stringify(dir)} })` +
    '.run().catch((e) => { console.error(e); process.exit(1); });';
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitPort(port, child, 's3rver', () => log);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    ...own(child, port, join(dir, `s3rver-${port}.pid`)),
    endpoint,
    env: {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: endpoint,
    },
  };
}
