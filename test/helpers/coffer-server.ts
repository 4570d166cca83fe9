import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { COFFER_BIN, coffer } from './cli.js';
import { freePort } from './servers.js';

export interface RunningServer {
  url: string;
  port: number;
  dataDir: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** SIGTERM and wait */
  stop(): Promise<void>;
  /** SIGKILL (a crash) and wait */
  kill(): Promise<void>;
}

/** Starts `coffer server` as our child on a free 127.0.0.1 port with a pid file; resolves once /api/health answers. */
export async function startServer(opts: {
  dir: string;
  dataDir: string;
  config?: unknown;
  env?: Record<string, string>;
  extraArgs?: string[];
  port?: number;
  scheme?: 'http' | 'https';
}): Promise<RunningServer> {
  const port = opts.port ?? (await freePort());
  const args = [
    COFFER_BIN,
    'server',
    '--listen',
    `127.0.0.1:${port}`,
    '--data',
    opts.dataDir,
    '--pid-file',
    join(opts.dir, `server-${port}.pid`),
  ];
  if (opts.config !== undefined) {
    const f = join(opts.dir, `server-config-${port}.json`);
    writeFileSync(f, typeof opts.config === 'string' ? opts.config : JSON.stringify(opts.config, null, 2));
    args.push('--config', f);
  }
  args.push(...(opts.extraArgs ?? []));
  const logFile = join(opts.dir, `server-${port}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = `${opts.scheme ?? 'http'}://127.0.0.1:${port}`;
  const until = Date.now() + 20_000;
  for (;;) {
    const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('wait'), 100))]);
    if (early !== 'wait') throw new Error(`coffer server exited with ${early}: ${readFileSync(logFile, 'utf8')}`);
    if (opts.scheme !== 'https') {
      const ok = await fetch(`${url}/api/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
    } else if (existsSync(join(opts.dir, `server-${port}.pid`))) break;
    if (Date.now() > until) throw new Error(`coffer server did not come up: ${readFileSync(logFile, 'utf8')}`);
  }
  const wait = async () => {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  };
  return {
    url,
    port,
    dataDir: opts.dataDir,
    pid: child.pid!,
    child,
    logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await wait();
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await wait();
    },
  };
}

/** `coffer token create` as a user would run it: the token is the last line of its output. */
export function makeToken(dataDir: string, role: string, name = role): string {
  const r = coffer(['token', 'create', '--data', dataDir, '--role', role, '--name', name]);
  if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

export interface ApiResult<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** A JSON API call; body: an object (sent as JSON) or a string (sent as is). */
export async function api<T = any>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await fetch(base + path, { method, headers, ...(body !== undefined ? { body } : {}) }).catch((e: Error) => {
    // which call failed, and why (the cause: ECONNRESET, ECONNREFUSED...), not only "fetch failed"
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`${method} ${base}${path}: ${e.message}${cause ? ` (${cause.code ?? cause.message})` : ''}`, {
      cause: e,
    });
  });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed as T, text, headers: r.headers };
}

/** Polls a job until it has finished (not queued, retrying or running). */
export async function waitJob(base: string, token: string, id: number, timeoutMs = 60_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(base, 'GET', `/api/v1/jobs/${id}`, { token });
    if (r.status !== 200) throw new Error(`GET job ${id}: ${r.status} ${r.text}`);
    if (!['queued', 'retrying', 'running'].includes(r.body.status)) return r.body;
    if (Date.now() > until) throw new Error(`job ${id} still ${r.body.status}: ${JSON.stringify(r.body.logs)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A local HTTP receiver for webhooks: records every request body. */
export async function startWebhookReceiver(): Promise<{ url: string; received: any[]; close(): Promise<void> }> {
  const received: any[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      try {
        received.push({ headers: req.headers, body: JSON.parse(data) });
      } catch {
        received.push({ headers: req.headers, body: data });
      }
      res.writeHead(204).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => new Promise((r) => server.close(() => r())) };
}

export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Creates a policy whose schedule fires once, about `leadMs` from now (croner: seconds first), and returns it with
 * that time. On a loaded machine the request can take so long that the time has passed before the server loads the
 * schedule (it would then fire tomorrow, and the test wait in vain): the answer's nextRuns.backup tells, and if it is
 * not the time asked for, or less than `slackMs` is left for the leader to pick the schedule up, the policy gets a
 * later time (PUT) and is checked again.
 */
export async function createPolicyFiringSoon(
  url: string,
  token: string,
  spec: Record<string, unknown>,
  opts: { leadMs?: number; slackMs?: number } = {},
): Promise<{ id: string; at: Date }> {
  const leadMs = opts.leadMs ?? 4_000;
  const slackMs = opts.slackMs ?? 1_000;
  let id: string | undefined;
  for (let attempt = 0; attempt < 10; attempt++) {
    const at = new Date(Math.ceil((Date.now() + leadMs) / 1000) * 1000);
    const body = { ...spec, schedule: `${at.getSeconds()} ${at.getMinutes()} ${at.getHours()} * * *` };
    const r = id
      ? await api(url, 'PUT', `/api/v1/policies/${id}`, { token, body })
      : await api(url, 'POST', '/api/v1/policies', { token, body });
    assert.equal(r.status, id ? 200 : 201, r.text);
    id = r.body.id as string;
    if (r.body.nextRuns?.backup === at.toISOString() && Date.now() < at.getTime() - slackMs) return { id, at };
  }
  throw new Error('the server never answered a policy change in time to schedule a run a few seconds ahead');
}
