/**
 * Test harness for vcsim-coffer: govmomi's vCenter simulator (Debian's govmomi 0.24.2, model VPX) with Coffer's
 * additions (QueryChangedDiskAreas emulated from per-block hashes, test hooks under /_coffer/).
 * See docs/TESTING-VCSIM.md. Sources: test/fixtures/vcsim/*.go.
 *
 * buildVcsim() builds the launcher once (GOPATH mode, offline) and caches the binary keyed by a hash of its sources;
 * startVcsim() runs it on 127.0.0.1 with a pid file and a ready file and returns its connection facts and stop().
 * The small SOAP helpers below (fetch-like poster over node:https, regex XML picking) are for tests only: they pin
 * the simulator's self-signed certificate (or skip verification with insecure: true), never use them for real servers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, openSync, closeSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------------------------
// build

/** The repository root: this file runs as dist-test/test/helpers/vcsim.js (or test/helpers/vcsim.ts). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'test', 'fixtures', 'vcsim', 'main.go'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('vcsim: cannot find test/fixtures/vcsim/main.go above ' + fileURLToPath(import.meta.url));
}

/** Where built binaries are cached (node_modules/.cache/coffer-vcsim, or $COFFER_VCSIM_CACHE). */
function cacheRoot(root: string): string {
  return process.env.COFFER_VCSIM_CACHE ?? join(root, 'node_modules', '.cache', 'coffer-vcsim');
}

let building: Promise<string> | undefined;

/**
 * Builds test/fixtures/vcsim (once per process; across processes the binary is cached under a hash of the Go sources
 * and the Go version). Needs golang-go and golang-github-vmware-govmomi-dev (scripts/setup.sh). ~25 s the first time.
 * Returns the binary's path.
 */
export function buildVcsim(): Promise<string> {
  building ??= doBuild();
  return building;
}

async function doBuild(): Promise<string> {
  const root = repoRoot();
  const src = join(root, 'test', 'fixtures', 'vcsim');
  const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (goVersion.status !== 0) {
    throw new Error('vcsim: `go` is not installed: run scripts/setup.sh (golang-go, golang-github-vmware-govmomi-dev)');
  }
  if (!existsSync('/usr/share/gocode/src/github.com/vmware/govmomi/simulator')) {
    throw new Error('vcsim: govmomi sources missing: run scripts/setup.sh (golang-github-vmware-govmomi-dev)');
  }
  const h = createHash('sha256');
  h.update(goVersion.stdout);
  for (const f of readdirSync(src).filter((n) => n.endsWith('.go')).sort()) {
    h.update(f + '\0');
    h.update(readFileSync(join(src, f)));
  }
  const key = h.digest('hex').slice(0, 16);
  const cache = cacheRoot(root);
  const bin = join(cache, key, 'vcsim-coffer');
  if (existsSync(bin)) return bin;
  mkdirSync(join(cache, key), { recursive: true });
  const tmpOut = `${bin}.${process.pid}.tmp`;
  const env = {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: '/usr/share/gocode',
    GOPROXY: 'off',
    GOFLAGS: '',
    GOCACHE: process.env.GOCACHE ?? join(cache, 'gocache'),
  };
  const r = await runAsync('go', ['build', '-o', tmpOut, './test/fixtures/vcsim'], { cwd: root, env }, 300_000);
  if (r.code !== 0) throw new Error(`vcsim: go build failed (${r.code}):\n${r.stderr}`);
  renameSync(tmpOut, bin); // atomic: a concurrent build of the same sources writes the same binary
  return bin;
}

function runAsync(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }, timeoutMs: number): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      res({ code: code ?? -1, stderr });
    });
    p.on('error', (e) => {
      clearTimeout(timer);
      res({ code: -1, stderr: String(e) });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// start / stop

export interface VcsimOptions {
  /** Working directory for pid/ready/log files and the datastores (TMPDIR of the simulator); a new temp dir if absent (removed by stop()). */
  dir?: string;
  /** TCP port on 127.0.0.1; 0 (default) lets the simulator pick one. */
  port?: number;
  datacenters?: number; // default 1
  clusters?: number; // per datacenter, default 1
  hostsPerCluster?: number; // default 3
  standaloneHosts?: number; // per datacenter, default 1
  /** VMs per resource pool (the standalone host's and each cluster's), default 2: DC0_H0_VM0, DC0_H0_VM1, DC0_C0_RP0_VM0, DC0_C0_RP0_VM1. */
  vms?: number;
  datastores?: number; // default 1 (LocalDS_0)
  username?: string; // default "user"
  password?: string; // default "pass"
  /** Disk sizes in MiB for every VM: the first resizes disk1.vmdk (default 1 MiB), the rest are added as disk2.vmdk ... */
  diskMiB?: number[];
  /** QueryChangedDiskAreas describes at most this many bytes a reply (default 1 GiB); lower it to test paging. */
  cqdaMaxBytes?: number;
  /** Milliseconds to wait for the ready file (default 60 s). */
  timeoutMs?: number;
  /** Log SOAP traffic to the log file. */
  trace?: boolean;
}

export interface VcsimDisk {
  key: number;
  /** "[LocalDS_0] DC0_H0_VM0/disk1.vmdk" */
  fileName: string;
  datastore: string;
  /** "DC0_H0_VM0/disk1.vmdk": for https://HOST/folder/PATH?dcPath=DC0&dsName=LocalDS_0 */
  path: string;
  /** the file on this machine: its bytes are the disk's content */
  localPath: string;
  capacityBytes: number;
  dcPath: string;
}

export interface VcsimVm {
  name: string;
  /** managed object id, e.g. "vm-57" (type VirtualMachine) */
  ref: string;
  disks: VcsimDisk[];
}

export interface Vcsim {
  /** https://127.0.0.1:PORT/sdk */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** SHA-256 of the server certificate, "AA:BB:..." */
  thumbprint: string;
  thumbprintSha1: string;
  certificatePem: string;
  /** local directory of LocalDS_0 */
  datastoreDir: string;
  datastores: { name: string; ref: string; dir: string }[];
  datacenters: string[];
  /** VMs at start, sorted by name, with their disks */
  vms: VcsimVm[];
  cqdaMaxBytes: number;
  blockSize: number;
  pid: number;
  dir: string;
  logFile: string;
  /** The VM by name (throws if absent). */
  vm(name: string): VcsimVm;
  /** SIGTERM, then SIGKILL after 5 s; removes the temp dir if startVcsim made it. */
  stop(): Promise<void>;
}

/** Alive and not a zombie (as test/helpers/servers.ts). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 250; i++) {
    if (!alive(pid)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
}

let runs = 0;

/** Builds (if needed) and starts vcsim-coffer on 127.0.0.1; resolves once its ready file is written. */
export async function startVcsim(opts: VcsimOptions = {}): Promise<Vcsim> {
  const bin = await buildVcsim();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'coffer-vcsim-'));
  mkdirSync(dir, { recursive: true });
  const n = ++runs;
  const pidFile = join(dir, `vcsim-${process.pid}-${n}.pid`);
  const readyFile = join(dir, `vcsim-${process.pid}-${n}.ready.json`);
  const logFile = join(dir, `vcsim-${process.pid}-${n}.log`);
  const args = [
    '-listen', `127.0.0.1:${opts.port ?? 0}`,
    '-pid-file', pidFile,
    '-ready-file', readyFile,
    '-dc', String(opts.datacenters ?? 1),
    '-cluster', String(opts.clusters ?? 1),
    '-host', String(opts.hostsPerCluster ?? 3),
    '-standalone-host', String(opts.standaloneHosts ?? 1),
    '-vm', String(opts.vms ?? 2),
    '-ds', String(opts.datastores ?? 1),
    '-username', opts.username ?? 'user',
    '-password', opts.password ?? 'pass',
  ];
  if (opts.diskMiB?.length) args.push('-disk-mib', opts.diskMiB.join(','));
  if (opts.cqdaMaxBytes !== undefined) args.push('-cqda-max-bytes', String(opts.cqdaMaxBytes));
  if (opts.trace) args.push('-trace');
  const log = openSync(logFile, 'a');
  const child = spawn(bin, args, { cwd: dir, env: { ...process.env, TMPDIR: dir }, stdio: ['ignore', log, log] });
  closeSync(log);
  let exited: number | null | undefined;
  child.on('exit', (code, sig) => (exited = code ?? (sig ? -1 : null)));
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (!existsSync(readyFile)) {
    if (exited !== undefined || Date.now() > deadline) {
      if (child.pid !== undefined) await stopPid(child.pid);
      const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (ownDir) rmSync(dir, { recursive: true, force: true });
      throw new Error(`vcsim did not get ready (${exited !== undefined ? `exited ${exited}` : 'timeout'}):\n${text.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const info = JSON.parse(readFileSync(readyFile, 'utf8')) as Omit<Vcsim, 'vm' | 'stop' | 'dir' | 'logFile'>;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  info.vms.sort((a, b) => a.name.localeCompare(b.name));
  let stopped = false;
  const vc: Vcsim = {
    ...info,
    pid,
    dir,
    logFile,
    vm(name: string) {
      const v = info.vms.find((x) => x.name === name);
      if (!v) throw new Error(`vcsim: no VM ${name} (have ${info.vms.map((x) => x.name).join(', ')})`);
      return v;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopPid(pid);
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return vc;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP and SOAP (tests only)

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTPS request to the simulator, pinning its certificate. */
export function vcRequest(vc: Pick<Vcsim, 'host' | 'port' | 'certificatePem'>, method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer | string; insecure?: boolean } = {}): Promise<HttpReply> {
  return new Promise((res, rej) => {
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (body) headers['content-length'] = String(body.length);
    const req = httpsRequest(
      {
        host: vc.host,
        port: vc.port,
        method,
        path,
        headers,
        ...(opts.insecure ? { rejectUnauthorized: false } : { ca: vc.certificatePem, servername: undefined }),
        agent: false,
        timeout: 60_000,
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks) }));
        r.on('error', rej);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`vcsim: ${method} ${path} timed out`)));
    req.on('error', rej);
    req.end(body);
  });
}

/** A SOAP fault from the simulator: faultType is the detail's xsi:type (e.g. "InvalidArgument"). */
export class SoapFault extends Error {
  constructor(
    readonly faultType: string,
    readonly faultString: string,
    readonly xml: string,
  ) {
    super(`SOAP fault ${faultType}: ${faultString}`);
  }
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function xmlUnescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#34;/g, '"').replace(/&apos;/g, "'").replace(/&#39;/g, "'").replace(/&amp;/g, '&');
}

/** Inner text of the first <tag> (any prefix, any attributes), or undefined. Test-grade XML picking. */
export function xmlText(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<(?:[\\w-]+:)?${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w-]+:)?${tag}>`).exec(xml);
  return m ? xmlUnescape(m[1]!) : undefined;
}

/** Inner texts of every <tag>. */
export function xmlAll(xml: string, tag: string): string[] {
  const re = new RegExp(`<(?:[\\w-]+:)?${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w-]+:)?${tag}>`, 'g');
  return [...xml.matchAll(re)].map((m) => xmlUnescape(m[1]!));
}

/** A managed object reference as SOAP wants it: <name type="T">value</name>. */
export function moref(name: string, type: string, value: string): string {
  return `<${name} type="${xmlEscape(type)}">${xmlEscape(value)}</${name}>`;
}

/** A logged-in SOAP session (cookie vmware_soap_session). */
export interface VcSession {
  vc: Vcsim;
  cookie: string;
}

/**
 * Posts one vim25 SOAP call: <method xmlns="urn:vim25"><_this type=T>V</_this>ARGS</method>. Returns the response XML;
 * throws SoapFault on a SOAP fault. session may be undefined (RetrieveServiceContent, Login).
 */
export async function soapCall(vc: Vcsim, session: { cookie: string } | undefined, method: string, thisType: string, thisValue: string, argsXml = ''): Promise<string> {
  const envelope =
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">' +
    `<soapenv:Body><${method} xmlns="urn:vim25">${moref('_this', thisType, thisValue)}${argsXml}</${method}></soapenv:Body></soapenv:Envelope>`;
  const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' };
  if (session?.cookie) headers.cookie = `vmware_soap_session=${session.cookie}`;
  const r = await vcRequest(vc, 'POST', new URL(vc.url).pathname, { headers, body: envelope });
  const xml = r.body.toString('utf8');
  if (r.status !== 200 || /<(?:\w+:)?Fault>/.test(xml)) {
    const detail = /<detail>\s*<(\w+)/.exec(xml);
    const typ = /<detail>\s*<\w+[^>]*?(?:xsi|XMLSchema-instance):type="([^"]+)"/.exec(xml);
    throw new SoapFault(typ?.[1] ?? detail?.[1]?.replace(/Fault$/, '') ?? `HTTP ${r.status}`, xmlText(xml, 'faultstring') ?? '', xml);
  }
  return xml;
}

/** RetrieveServiceContent + Login with the simulator's credentials. */
export async function vcLogin(vc: Vcsim, username = vc.username, password = vc.password): Promise<VcSession> {
  const sc = await soapCall(vc, undefined, 'RetrieveServiceContent', 'ServiceInstance', 'ServiceInstance');
  const sm = xmlText(sc, 'sessionManager');
  if (!sm) throw new Error('vcsim: no sessionManager in the service content');
  const envelope = `<userName>${xmlEscape(username)}</userName><password>${xmlEscape(password)}</password>`;
  // Login sets the cookie: do the request by hand to read Set-Cookie
  const body =
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>' +
    `<Login xmlns="urn:vim25">${moref('_this', 'SessionManager', sm)}${envelope}</Login></soapenv:Body></soapenv:Envelope>`;
  const r = await vcRequest(vc, 'POST', new URL(vc.url).pathname, { headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' }, body });
  const xml = r.body.toString('utf8');
  if (r.status !== 200) throw new SoapFault(/xsi:type="(\w+)"|XMLSchema-instance:type="(\w+)"/.exec(xml)?.[1] ?? `HTTP ${r.status}`, xmlText(xml, 'faultstring') ?? '', xml);
  const setCookie = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
  const c = setCookie.map((s) => /vmware_soap_session=([^;]+)/.exec(s)?.[1]).find((x) => x);
  if (!c) throw new Error('vcsim: Login set no vmware_soap_session cookie');
  return { vc, cookie: c };
}

/** RetrieveProperties of one object: returns the XML of the response (use xmlText on it). */
export async function retrieveProperties(s: VcSession, type: string, value: string, paths: string[]): Promise<string> {
  const spec =
    '<specSet><propSet>' +
    `<type>${xmlEscape(type)}</type>${paths.map((p) => `<pathSet>${xmlEscape(p)}</pathSet>`).join('')}` +
    `</propSet><objectSet>${moref('obj', type, value)}</objectSet></specSet>`;
  return soapCall(s.vc, s, 'RetrieveProperties', 'PropertyCollector', 'propertyCollector', spec);
}

/** Waits for a task (moref id) to finish; returns the response XML of its info; throws SoapFault-like Error on error state. */
export async function waitTask(s: VcSession, task: string, timeoutMs = 30_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const xml = await retrieveProperties(s, 'Task', task, ['info']);
    const state = xmlText(xml, 'state');
    if (state === 'success') return xml;
    if (state === 'error') {
      const err = xmlText(xml, 'error') ?? '';
      const typ = /<fault\s[^>]*?(?:xsi|XMLSchema-instance):type="([^"]+)"/.exec(err)?.[1] ?? 'unknown';
      throw new SoapFault(typ, xmlText(err, 'localizedMessage') ?? '', xml);
    }
    if (Date.now() > until) throw new Error(`vcsim: task ${task} still ${state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
