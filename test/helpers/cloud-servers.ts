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

/**
 * Azurite (blob service only) as our own child process on 127.0.0.1, data under `dir` (survives a restart on
 * the same dir and port). `accounts`: AZURITE_ACCOUNTS (e.g. "region1:KEY1") for extra accounts.
 */
export async function startAzurite(dir: string, opts: { port?: number; accounts?: string } = {}): Promise<OwnedServer & { endpoint: string; connectionString: string }> {
  const port = opts.port ?? (await freePort());
  mkdirSync(dir, { recursive: true });
  let log = '';
  const child = spawn(
    process.execPath,
    [join(ROOT, 'node_modules/azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--skipApiVersionCheck', '--loose', '--disableTelemetry', '--silent'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(opts.accounts ? { AZURITE_ACCOUNTS: opts.accounts } : {}) } },
  );
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitPort(port, child, 'azurite', () => log);
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  return {
    ...own(child, port, join(dir, `azurite-${port}.pid`)),
    endpoint,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`,
  };
}

/** s3rver (credentials S3RVER/S3RVER) as our own child process on 127.0.0.1, data under `dir`. */
export async function startS3rver(dir: string, opts: { port?: number } = {}): Promise<OwnedServer & { endpoint: string; env: Record<string, string> }> {
  const port = opts.port ?? (await freePort());
  mkdirSync(dir, { recursive: true });
  let log = '';
  const script = `const S3rver = require(${JSON.stringify(join(ROOT, 'node_modules/s3rver'))});
new S3rver({ address: '127.0.0.1', port: ${port}, silent: true, directory: ${JSON.stringify(dir)} }).run().catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitPort(port, child, 's3rver', () => log);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    ...own(child, port, join(dir, `s3rver-${port}.pid`)),
    endpoint,
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: endpoint },
  };
}
