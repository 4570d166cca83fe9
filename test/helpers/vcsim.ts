/**
 * Test harness for vcsim-coffer: govmomi's vCenter simulator (Debian's govmomi 0.24.2, model VPX) with Coffer's
 * additions (QueryChangedDiskAreas emulated from per-block hashes, test hooks under /_coffer/, optional /folder
 * authentication and delta disks, disk files sized to their disks, a fix for vcsim deleting disks on snapshot removal).
 * See docs/TESTING-VCSIM.md. Sources: test/fixtures/vcsim/*.go.
 *
 * buildVcsim() builds the launcher once (GOPATH mode, offline) and caches the binary keyed by a hash of its sources;
 * startVcsim() runs it on 127.0.0.1 with a pid file and a ready file and returns its connection facts and stop().
 * The small SOAP helpers below (fetch-like poster over node:https, regex XML picking) are for tests only: they pin
 * the simulator's self-signed certificate (or skip verification with insecure: true), never use them for real servers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive } from './servers.js';

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
  for (const f of readdirSync(src)
    .filter((n) => n.endsWith('.go'))
    .sort()) {
    h.update(f + '\0');
    h.update(readFileSync(join(src, f)));
  }
  const key = h.digest('hex').slice(0, 16);
  const cache = cacheRoot(root);
  const bin = join(cache, key, 'vcsim-coffer');
  if (existsSync(bin)) return bin;
  mkdirSync(join(cache, key), { recursive: true });
  // One build at a time across test processes (node --test runs files in parallel): a lock directory; the others
  // wait for the binary. A lock older than 10 minutes is stale (its builder died).
  const lock = `${bin}.lock`;
  const until = Date.now() + 600_000;
  for (;;) {
    if (existsSync(bin)) return bin;
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 600_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        /* released meanwhile */
      }
      if (Date.now() > until) throw new Error(`vcsim: waited 10 minutes for another process building ${bin}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (existsSync(bin)) return bin;
    return await goBuild(root, cache, bin);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function goBuild(root: string, cache: string, bin: string): Promise<string> {
  const tmpOut = `${bin}.${process.pid}.tmp`;
  const env = {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: '/usr/share/gocode',
    GOPROXY: 'off',
    GOFLAGS: '',
    GOCACHE: process.env.GOCACHE ?? join(cache, 'gocache'),
  };
  const r = await runAsync('go', ['build', '-o', tmpOut, './test/fixtures/vcsim'], { cwd: root, env }, 900_000);
  if (r.code !== 0) throw new Error(`vcsim: go build failed (${r.code}):\n${r.stderr}`);
  renameSync(tmpOut, bin); // atomic: a concurrent build of the same sources writes the same binary
  return bin;
}

function runAsync(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv },
  timeoutMs: number,
): Promise<{ code: number; stderr: string }> {
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
  /**
   * Working directory for pid/ready/log files and the datastores (TMPDIR of the simulator); a new temp dir if absent
   * (removed by stop()).
   */
  dir?: string;
  /** TCP port on 127.0.0.1; 0 (default) lets the simulator pick one. */
  port?: number;
  datacenters?: number; // default 1
  clusters?: number; // per datacenter, default 1
  hostsPerCluster?: number; // default 3
  standaloneHosts?: number; // per datacenter, default 1
  /**
   * VMs per resource pool (the standalone host's and each cluster's), default 2: DC0_H0_VM0, DC0_H0_VM1,
   * DC0_C0_RP0_VM0, DC0_C0_RP0_VM1.
   */
  vms?: number;
  datastores?: number; // default 1 (LocalDS_0)
  username?: string; // default "user"
  password?: string; // default "pass"
  /**
   * Disk sizes in MiB for every VM: the first resizes disk1.vmdk (default 1 MiB), the rest are added as disk2.vmdk ...
   */
  diskMiB?: number[];
  /** QueryChangedDiskAreas describes at most this many bytes a reply (default 1 GiB); lower it to test paging. */
  cqdaMaxBytes?: number;
  /** Milliseconds to wait for the ready file (default 60 s). */
  timeoutMs?: number;
  /** Log SOAP traffic to the log file. */
  trace?: boolean;
  /**
   * Require authentication on /folder (datastore file access) as vCenter does: a live vmware_soap_session cookie or
   * HTTP Basic with the username/password; 401 otherwise. Off by default (the simulator itself does not check).
   */
  folderAuth?: boolean;
  /**
   * Snapshots freeze disk content, as on vSphere: after CreateSnapshot_Task the VM's disks move to new delta files
   * (disk1-000001.vmdk, backing.parent = the snapshot's file) and guest writes must go to the VM's current file
   * (currentDisks()); RemoveSnapshot_Task consolidates. Off by default (vcsim: one file for snapshot and VM).
   */
  deltaDisks?: boolean;
  /** Hot-add: a disk attached (existing file) to any VM appears as DIR/wwn-0x<backing uuid> -> its data file. */
  byIdDir?: string;
  /** Add DC0_C0_VSAN0 and DC0_H0_LAYOUT0 (default true). */
  layoutVms?: boolean;
}

export interface VcsimDisk {
  key: number;
  /** "[LocalDS_0] DC0_H0_VM0/disk1.vmdk" */
  fileName: string;
  datastore: string;
  /** "DC0_H0_VM0/disk1.vmdk": for https://HOST/folder/PATH?dcPath=DC0&dsName=LocalDS_0 */
  path: string;
  /** the descriptor on this machine (a text file naming the extent, as on VMFS/NFS/vSAN) */
  localPath: string;
  /** the file on this machine holding the disk's bytes: the -flat.vmdk, the vSAN object or the RDM mapping file */
  dataLocalPath: string;
  /** the data file's datastore path for /folder ("DC0_H0_VM0/disk1-flat.vmdk"); undefined on vSAN (an object) */
  dataPath?: string | undefined;
  capacityBytes: number;
  dcPath: string;
  /** flat, rdm-virtual, rdm-physical */
  backing?: string;
  /** persistent, independent_persistent ... */
  diskMode?: string;
  /** backing uuid (a hot-added disk shows as /dev/disk/by-id/wwn-0x<uuid without dashes>) */
  uuid?: string;
}

export interface VcsimVm {
  name: string;
  /** managed object id, e.g. "vm-57" (type VirtualMachine) */
  ref: string;
  /** config.uuid: the BIOS (SMBIOS) UUID a guest reads from /sys/class/dmi/id/product_uuid */
  uuid: string;
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
  /** LocalDS_N (type VMFS) and vsanDatastore (type vsan) */
  datastores: { name: string; ref: string; dir: string; type: string }[];
  /** where vsan:// objects' bytes live (outside every datastore: /folder cannot reach them) */
  vsanObjectDir: string;
  /** startVcsim({byIdDir}): disks hot-added to a VM appear here as wwn-0x<uuid> symlinks */
  byIdDir?: string;
  datacenters: string[];
  /** VMs at start, sorted by name, with their disks */
  vms: VcsimVm[];
  cqdaMaxBytes: number;
  blockSize: number;
  /** /folder requires a session cookie or Basic credentials (startVcsim({folderAuth: true})) */
  folderAuth: boolean;
  /** snapshots freeze disk content in delta files (startVcsim({deltaDisks: true})) */
  deltaDisks: boolean;
  pid: number;
  dir: string;
  logFile: string;
  /** The VM by name (throws if absent). */
  vm(name: string): VcsimVm;
  /** SIGTERM, then SIGKILL after 5 s; removes the temp dir if startVcsim made it. */
  stop(): Promise<void>;
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

/** Simulators started by this process and not stopped: killed when the process exits, so a failed test leaves none. */
const live = new Set<number>();
let exitHook = false;
function track(pid: number): void {
  live.add(pid);
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

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
    '-listen',
    `127.0.0.1:${opts.port ?? 0}`,
    '-pid-file',
    pidFile,
    '-ready-file',
    readyFile,
    '-dc',
    String(opts.datacenters ?? 1),
    '-cluster',
    String(opts.clusters ?? 1),
    '-host',
    String(opts.hostsPerCluster ?? 3),
    '-standalone-host',
    String(opts.standaloneHosts ?? 1),
    '-vm',
    String(opts.vms ?? 2),
    '-ds',
    String(opts.datastores ?? 1),
    '-username',
    opts.username ?? 'user',
    '-password',
    opts.password ?? 'pass',
  ];
  if (opts.diskMiB?.length) args.push('-disk-mib', opts.diskMiB.join(','));
  if (opts.cqdaMaxBytes !== undefined) args.push('-cqda-max-bytes', String(opts.cqdaMaxBytes));
  if (opts.trace) args.push('-trace');
  if (opts.folderAuth) args.push('-folder-auth');
  if (opts.deltaDisks) args.push('-delta-disks');
  if (opts.byIdDir) args.push('-by-id-dir', opts.byIdDir);
  if (opts.layoutVms === false) args.push('-layout-vms=false');
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
      throw new Error(
        `vcsim did not get ready (${exited !== undefined ? `exited ${exited}` : 'timeout'}):\n${text.slice(-4000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const info = JSON.parse(readFileSync(readyFile, 'utf8')) as Omit<Vcsim, 'vm' | 'stop' | 'dir' | 'logFile'>;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  track(pid);
  info.vms.sort((a, b) => a.name.localeCompare(b.name));
  for (const v of info.vms) for (const d of v.disks) d.dataPath = dataPathOf(info, d.datastore, d.dataLocalPath);
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
      live.delete(pid);
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
export function vcRequest(
  vc: Pick<Vcsim, 'host' | 'port' | 'certificatePem'>,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: Buffer | string; insecure?: boolean } = {},
): Promise<HttpReply> {
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
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#34;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
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
export async function soapCall(
  vc: Vcsim,
  session: { cookie: string } | undefined,
  method: string,
  thisType: string,
  thisValue: string,
  argsXml = '',
): Promise<string> {
  const envelope =
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">' +
    `<soapenv:Body><${method} xmlns="urn:vim25">${moref('_this', thisType, thisValue)}${argsXml}</${method}>` +
    '</soapenv:Body></soapenv:Envelope>';
  const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' };
  if (session?.cookie) headers.cookie = `vmware_soap_session=${session.cookie}`;
  const r = await vcRequest(vc, 'POST', new URL(vc.url).pathname, { headers, body: envelope });
  const xml = r.body.toString('utf8');
  if (r.status !== 200 || /<(?:\w+:)?Fault>/.test(xml)) {
    const detail = /<detail>\s*<(\w+)/.exec(xml);
    const typ = /<detail>\s*<\w+[^>]*?(?:xsi|XMLSchema-instance):type="([^"]+)"/.exec(xml);
    throw new SoapFault(
      typ?.[1] ?? detail?.[1]?.replace(/Fault$/, '') ?? `HTTP ${r.status}`,
      xmlText(xml, 'faultstring') ?? '',
      xml,
    );
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
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope ' +
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>' +
    `<Login xmlns="urn:vim25">${moref('_this', 'SessionManager', sm)}${envelope}</Login>` +
    '</soapenv:Body></soapenv:Envelope>';
  const r = await vcRequest(vc, 'POST', new URL(vc.url).pathname, {
    headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' },
    body,
  });
  const xml = r.body.toString('utf8');
  if (r.status !== 200)
    throw new SoapFault(
      /xsi:type="(\w+)"|XMLSchema-instance:type="(\w+)"/.exec(xml)?.[1] ?? `HTTP ${r.status}`,
      xmlText(xml, 'faultstring') ?? '',
      xml,
    );
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

/**
 * Waits for a task (moref id) to finish; returns the response XML of its info; throws SoapFault-like Error on error
 * state.
 */
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

// ---------------------------------------------------------------------------------------------------------------
// VM operations (tests only)

/** ReconfigVM_Task with changeTrackingEnabled (vcsim stores the flag; change tracking is active at once). */
export async function setChangeTracking(s: VcSession, vmRef: string, enabled: boolean): Promise<void> {
  const xml = await soapCall(
    s.vc,
    s,
    'ReconfigVM_Task',
    'VirtualMachine',
    vmRef,
    `<spec><changeTrackingEnabled>${enabled}</changeTrackingEnabled></spec>`,
  );
  await waitTask(s, xmlText(xml, 'returnval')!);
}

/** CreateSnapshot_Task; returns the snapshot's managed object id. Throws SoapFault when the task ends in error. */
export async function createSnapshot(
  s: VcSession,
  vmRef: string,
  name: string,
  opts: { memory?: boolean; quiesce?: boolean; description?: string } = {},
): Promise<string> {
  const xml = await soapCall(
    s.vc,
    s,
    'CreateSnapshot_Task',
    'VirtualMachine',
    vmRef,
    `<name>${xmlEscape(name)}</name>` +
      `${opts.description !== undefined ? `<description>${xmlEscape(opts.description)}</description>` : ''}` +
      `<memory>${opts.memory ?? false}</memory><quiesce>${opts.quiesce ?? false}</quiesce>`,
  );
  const info = await waitTask(s, xmlText(xml, 'returnval')!);
  const snap = xmlText(info, 'result');
  if (!snap) throw new Error('vcsim: CreateSnapshot_Task returned no snapshot');
  return snap;
}

/** RemoveSnapshot_Task (removeChildren: the whole branch). */
export async function removeSnapshot(s: VcSession, snapRef: string, removeChildren = false): Promise<void> {
  const xml = await soapCall(
    s.vc,
    s,
    'RemoveSnapshot_Task',
    'VirtualMachineSnapshot',
    snapRef,
    `<removeChildren>${removeChildren}</removeChildren>`,
  );
  await waitTask(s, xmlText(xml, 'returnval')!);
}

export async function powerOn(s: VcSession, vmRef: string): Promise<void> {
  const xml = await soapCall(s.vc, s, 'PowerOnVM_Task', 'VirtualMachine', vmRef);
  await waitTask(s, xmlText(xml, 'returnval')!);
}

export async function powerOff(s: VcSession, vmRef: string): Promise<void> {
  const xml = await soapCall(s.vc, s, 'PowerOffVM_Task', 'VirtualMachine', vmRef);
  await waitTask(s, xmlText(xml, 'returnval')!);
}

/** runtime.powerState: "poweredOn" | "poweredOff" | "suspended". */
export async function powerState(s: VcSession, vmRef: string): Promise<string> {
  return xmlText(await retrieveProperties(s, 'VirtualMachine', vmRef, ['runtime.powerState']), 'val') ?? '';
}

export interface DiskBacking {
  key: number;
  fileName: string;
  controllerKey: number;
  unitNumber: number;
  capacityBytes: number;
  /** backing.changeId, undefined when not set */
  changeId?: string;
  /** backing.parent.fileName (a delta disk's parent), undefined when none */
  parentFileName?: string;
}

/**
 * The virtual disks of a VM ("VirtualMachine") or of a snapshot ("VirtualMachineSnapshot") from config.hardware.device.
 */
export async function listDisks(
  s: VcSession,
  type: 'VirtualMachine' | 'VirtualMachineSnapshot',
  ref: string,
): Promise<DiskBacking[]> {
  const xml = await retrieveProperties(s, type, ref, ['config.hardware.device']);
  const out: DiskBacking[] = [];
  for (const part of xml.split(/<VirtualDevice\s/).slice(1)) {
    if (!/^[^>]*type="VirtualDisk"/.test(part)) continue;
    const kb = Number(xmlText(part, 'capacityInKB') ?? 0);
    const bytes = Number(xmlText(part, 'capacityInBytes') ?? 0);
    const backing = xmlText(part, 'backing') ?? '';
    const parent = xmlText(backing, 'parent');
    const own = backing.replace(/<parent[\s>][\s\S]*<\/parent>/, '');
    const changeId = xmlText(own, 'changeId');
    out.push({
      key: Number(xmlText(part, 'key')),
      fileName: xmlText(own, 'fileName') ?? '',
      controllerKey: Number(xmlText(part.replace(/<backing[\s\S]*?<\/backing>/, ''), 'controllerKey')),
      unitNumber: Number(xmlText(part.replace(/<backing[\s\S]*?<\/backing>/, ''), 'unitNumber')),
      capacityBytes: bytes > 0 ? bytes : kb * 1024,
      ...(changeId ? { changeId } : {}),
      ...(parent ? { parentFileName: xmlText(parent, 'fileName') ?? '' } : {}),
    });
  }
  return out;
}

/** backing.changeId of one disk of a VM or snapshot (undefined if none). */
export async function diskChangeId(
  s: VcSession,
  type: 'VirtualMachine' | 'VirtualMachineSnapshot',
  ref: string,
  deviceKey: number,
): Promise<string | undefined> {
  const d = (await listDisks(s, type, ref)).find((x) => x.key === deviceKey);
  if (!d) throw new Error(`vcsim: no disk ${deviceKey} on ${type} ${ref}`);
  return d.changeId;
}

/**
 * The disks of a VM (or snapshot) as they are now, with /folder paths and local files: with deltaDisks the VM's
 * current files change at every snapshot, so write guest data through these.
 */
export async function currentDisks(
  s: VcSession,
  type: 'VirtualMachine' | 'VirtualMachineSnapshot',
  ref: string,
): Promise<(VcsimDisk & { changeId?: string; parentFileName?: string })[]> {
  const vmRef =
    type === 'VirtualMachine'
      ? ref
      : (xmlText(await retrieveProperties(s, 'VirtualMachineSnapshot', ref, ['vm']), 'val') ?? '');
  const dcPath = s.vc.vms.find((v) => v.ref === vmRef)?.disks[0]?.dcPath ?? 'DC0';
  return (await listDisks(s, type, ref)).map((d) => {
    const m = /^\[([^\]]+)\]\s*(.*)$/.exec(d.fileName);
    return {
      key: d.key,
      fileName: d.fileName,
      datastore: m?.[1] ?? '',
      path: m?.[2] ?? '',
      localPath: localPathOf(s.vc, d.fileName),
      dataLocalPath: dataLocalPathOf(s.vc, d.fileName),
      dataPath: dataPathOf(s.vc, m?.[1] ?? '', dataLocalPathOf(s.vc, d.fileName)),
      capacityBytes: d.capacityBytes,
      dcPath,
      ...(d.changeId ? { changeId: d.changeId } : {}),
      ...(d.parentFileName ? { parentFileName: d.parentFileName } : {}),
    };
  });
}

export interface ChangedArea {
  start: number;
  length: number;
}

export interface DiskChangeInfo {
  startOffset: number;
  length: number;
  changedArea: ChangedArea[];
}

/** One QueryChangedDiskAreas call (snapshot may be undefined: the current state of a powered-off VM). */
export async function queryChangedDiskAreas(
  s: VcSession,
  vmRef: string,
  snapRef: string | undefined,
  deviceKey: number,
  startOffset: number,
  changeId: string,
): Promise<DiskChangeInfo> {
  const args =
    (snapRef ? moref('snapshot', 'VirtualMachineSnapshot', snapRef) : '') +
    `<deviceKey>${deviceKey}</deviceKey><startOffset>${startOffset}</startOffset>` +
    `<changeId>${xmlEscape(changeId)}</changeId>`;
  const xml = await soapCall(s.vc, s, 'QueryChangedDiskAreas', 'VirtualMachine', vmRef, args);
  const ret = xmlText(xml, 'returnval') ?? '';
  const areas = xmlAll(ret, 'changedArea').map((a) => ({
    start: Number(xmlText(a, 'start')),
    length: Number(xmlText(a, 'length')),
  }));
  const head = ret.replace(/<changedArea>[\s\S]*?<\/changedArea>/g, '');
  return {
    startOffset: Number(xmlText(head, 'startOffset')),
    length: Number(xmlText(head, 'length')),
    changedArea: areas,
  };
}

/** Pages through QueryChangedDiskAreas from offset 0 to capacity; returns all areas and the number of calls. */
export async function queryAllChangedAreas(
  s: VcSession,
  vmRef: string,
  snapRef: string | undefined,
  deviceKey: number,
  capacityBytes: number,
  changeId: string,
): Promise<{ areas: ChangedArea[]; calls: number }> {
  const areas: ChangedArea[] = [];
  let off = 0;
  let calls = 0;
  while (off < capacityBytes) {
    const r = await queryChangedDiskAreas(s, vmRef, snapRef, deviceKey, off, changeId);
    calls++;
    if (r.length <= 0) throw new Error('vcsim: QueryChangedDiskAreas returned length 0');
    areas.push(...r.changedArea);
    off = r.startOffset + r.length;
  }
  return { areas, calls };
}

// ---------------------------------------------------------------------------------------------------------------
// Datastore files (/folder: the simulator does not check the session there, real vCenter does)

/** The /folder URL of a disk's data file (its -flat.vmdk): vSAN disks have none. */
function dataFolderPath(vc: Vcsim, disk: DiskRef): string {
  if (!('dataPath' in disk)) {
    // a disk named by path only (a restored VM's, a plain file): follow its descriptor locally, if it is one
    const local = dataLocalPathOf(vc, `[${disk.datastore}] ${disk.path}`);
    disk = { ...disk, dataPath: dataPathOf(vc, disk.datastore, local) };
  }
  if (!disk.dataPath)
    throw new Error(
      `vcsim: disk ${disk.path} on ${disk.datastore} has no data file /folder can reach (vSAN ` +
        `object): write its dataLocalPath`,
    );
  const p = disk.dataPath.split('/').map(encodeURIComponent).join('/');
  return `/folder/${p}?dcPath=${encodeURIComponent(disk.dcPath || 'DC0')}&dsName=${encodeURIComponent(disk.datastore)}`;
}

/**
 * How to authenticate on /folder: 'none', 'basic' (the simulator's username/password) or a session (its cookie).
 * Default: 'basic' when the simulator was started with folderAuth, else 'none'.
 */
export type FolderAuth = 'none' | 'basic' | VcSession;

function folderHeaders(vc: Vcsim, auth: FolderAuth | undefined): Record<string, string> {
  const a = auth ?? (vc.folderAuth ? 'basic' : 'none');
  if (a === 'none') return {};
  if (a === 'basic')
    return { authorization: `Basic ${Buffer.from(`${vc.username}:${vc.password}`).toString('base64')}` };
  return { cookie: `vmware_soap_session=${a.cookie}` };
}

type DiskRef = Pick<VcsimDisk, 'path' | 'datastore' | 'dcPath'> & { dataPath?: string | undefined };

/**
 * Replaces the disk's content (PUT /folder of its -flat.vmdk: a full rewrite). Pass capacity-sized data to keep ranged
 * reads valid.
 */
export async function uploadDisk(vc: Vcsim, disk: DiskRef, data: Buffer, auth?: FolderAuth): Promise<void> {
  const r = await vcRequest(vc, 'PUT', dataFolderPath(vc, disk), {
    body: data,
    headers: { 'content-type': 'application/octet-stream', ...folderHeaders(vc, auth) },
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`vcsim: PUT ${disk.path}: HTTP ${r.status}`);
}

/** Reads the disk's content (GET /folder of its -flat.vmdk), optionally a byte range [start, end). */
export async function downloadDisk(
  vc: Vcsim,
  disk: DiskRef,
  range?: { start: number; end: number },
  auth?: FolderAuth,
): Promise<Buffer> {
  const headers: Record<string, string> = { ...folderHeaders(vc, auth) };
  if (range) headers.range = `bytes=${range.start}-${range.end - 1}`;
  const r = await vcRequest(vc, 'GET', dataFolderPath(vc, disk), { headers });
  if (r.status !== 200 && r.status !== 206) throw new Error(`vcsim: GET ${disk.path}: HTTP ${r.status}`);
  return r.body;
}

/** The local file behind a datastore path ("[LocalDS_0] DC0_H0_VM0/disk1.vmdk"). */
export function localPathOf(vc: Vcsim, fileName: string): string {
  const m = /^\[([^\]]+)\]\s*(.*)$/.exec(fileName);
  const ds = m && vc.datastores.find((d) => d.name === m[1]);
  if (!m || !ds) throw new Error(`vcsim: not a datastore path of this simulator: ${fileName}`);
  const full = resolve(ds.dir, m[2]!);
  if (!full.startsWith(resolve(ds.dir) + '/')) throw new Error(`vcsim: path escapes the datastore: ${fileName}`);
  return full;
}

/** The datastore-relative path of a local data file, or undefined when it is outside the datastore (a vSAN object). */
export function dataPathOf(vc: Pick<Vcsim, 'datastores'>, datastore: string, local: string): string | undefined {
  const ds = vc.datastores.find((d) => d.name === datastore);
  if (!ds || !local.startsWith(resolve(ds.dir) + '/')) return undefined;
  return local.slice(resolve(ds.dir).length + 1);
}

/**
 * The local file holding a disk's bytes: the first extent of its descriptor resolved as ESXi does (relative to the
 * descriptor, /vmfs/volumes/DS/..., vsan://ID in the simulator's object directory); the .vmdk itself if it is no
 * descriptor.
 */
export function dataLocalPathOf(vc: Pick<Vcsim, 'datastores' | 'vsanObjectDir'>, fileName: string): string {
  const local = localPathOf(vc as Vcsim, fileName);
  let text = '';
  try {
    text = readFileSync(local).subarray(0, 65536).toString('latin1');
  } catch {
    return local;
  }
  if (!/^\s*# Disk DescriptorFile/.test(text)) return local;
  const m = /^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]+)"/m.exec(text);
  if (!m) return local;
  const file = m[1]!;
  if (file.startsWith('vsan://')) return join(vc.vsanObjectDir, file.slice(7));
  if (file.startsWith('/vmfs/volumes/')) {
    const rest = file.slice('/vmfs/volumes/'.length);
    return localPathOf(vc as Vcsim, `[${rest.slice(0, rest.indexOf('/'))}] ${rest.slice(rest.indexOf('/') + 1)}`);
  }
  return join(dirname(local), file);
}

/**
 * Adds a thin disk of sizeBytes to a VM (ReconfigVM_Task, device add + file create, on the SCSI controller of its
 * first disk) and makes its file sparse at full size. Returns the new disk as a VcsimDisk (path for /folder).
 */
export async function addDisk(s: VcSession, vmRef: string, sizeBytes: number, fileName?: string): Promise<VcsimDisk> {
  if (sizeBytes <= 0 || sizeBytes % 1024 !== 0)
    throw new Error('vcsim: disk size must be a positive multiple of 1 KiB');
  const before = await listDisks(s, 'VirtualMachine', vmRef);
  const first = before[0];
  if (!first) throw new Error(`vcsim: VM ${vmRef} has no disk to take the controller from`);
  const used = new Set(before.filter((d) => d.controllerKey === first.controllerKey).map((d) => d.unitNumber));
  let unit = 0;
  while (used.has(unit) || unit === 7) unit++;
  const m = /^\[([^\]]+)\]\s*(.*)\/[^/]+$/.exec(first.fileName);
  if (!m) throw new Error(`vcsim: unexpected disk file name ${first.fileName}`);
  const name = fileName ?? `[${m[1]}] ${m[2]}/disk-added-${unit}.vmdk`;
  const spec =
    '<spec><deviceChange><operation>add</operation><fileOperation>create</fileOperation>' +
    '<device xsi:type="VirtualDisk"><key>-101</key>' +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${xmlEscape(name)}</fileName>` +
    '<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing>' +
    `<controllerKey>${first.controllerKey}</controllerKey><unitNumber>${unit}</unitNumber>` +
    `<capacityInKB>${sizeBytes / 1024}</capacityInKB><capacityInBytes>${sizeBytes}</capacityInBytes></device>` +
    '</deviceChange></spec>';
  const xml = await soapCall(s.vc, s, 'ReconfigVM_Task', 'VirtualMachine', vmRef, spec);
  await waitTask(s, xmlText(xml, 'returnval')!);
  const after = await listDisks(s, 'VirtualMachine', vmRef);
  const added = after.find((d) => d.fileName === name);
  if (!added) throw new Error(`vcsim: the added disk ${name} is not in the VM's devices`);
  const local = localPathOf(s.vc, name);
  const data = dataLocalPathOf(s.vc, name); // the launcher wrote a descriptor and a sparse data file of full size
  const dsName = m[1]!;
  const rel = name.replace(/^\[[^\]]+\]\s*/, '');
  const dcPath = s.vc.vms.find((v) => v.ref === vmRef)?.disks[0]?.dcPath ?? 'DC0';
  return {
    key: added.key,
    fileName: name,
    datastore: dsName,
    path: rel,
    localPath: local,
    dataLocalPath: data,
    dataPath: dataPathOf(s.vc, dsName, data),
    capacityBytes: sizeBytes,
    dcPath,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Test hooks: faults the simulator cannot produce by itself (see test/fixtures/vcsim/ext.go)

async function hook(
  vc: Vcsim,
  path: string,
  query: Record<string, string | number | undefined> = {},
  method = 'POST',
): Promise<Record<string, unknown>> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const qs = q.toString();
  const r = await vcRequest(vc, method, `/_coffer/${path}${qs ? `?${qs}` : ''}`);
  const body = JSON.parse(r.body.toString('utf8') || '{}') as Record<string, unknown>;
  if (r.status !== 200) throw new Error(`vcsim hook ${path}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/**
 * The next `count` (default 1) calls of `method` (on managed object id `opts.this`, or any) fail: a *_Task method
 * returns a task that ends in error state with the fault, other methods answer a SOAP fault.
 * fault: a vim25 fault type name (default "SystemError"), message: the localized message.
 */
export function failNext(vc: Vcsim, method: string, opts: FailNextOptions = {}): Promise<Record<string, unknown>> {
  return hook(vc, 'fail-next', {
    method,
    fault: opts.fault,
    message: opts.message,
    count: opts.count,
    this: opts.this,
    mode: opts.mode,
    delayMs: opts.delayMs,
  });
}

export interface FailNextOptions {
  /** vim25 fault type name, default "SystemError" (mode "fault") */
  fault?: string;
  message?: string;
  /** how many calls, default 1 */
  count?: number;
  /** only calls on this managed object id */
  this?: string;
  /**
   * fault (default): a SOAP fault, or for *_Task methods a task ending in error; drop: the connection is closed without
   * a reply; http503: an HTML 503 as a load balancer sends; garbage: HTTP 200 with broken XML; delay: answered
   * normally after delayMs.
   */
  mode?: 'fault' | 'drop' | 'http503' | 'garbage' | 'delay';
  /** wait this long before acting (any mode) */
  delayMs?: number;
}

export function clearFailures(vc: Vcsim): Promise<Record<string, unknown>> {
  return hook(vc, 'clear-failures');
}

/** Terminates every session: the next call with an old cookie gets NotAuthenticated; logging in again works. */
export function expireSessions(vc: Vcsim): Promise<Record<string, unknown>> {
  return hook(vc, 'expire-sessions');
}

/** Resets change tracking (all VMs, or one VM id): every changeId minted so far becomes unknown (InvalidArgument). */
export function forgetChangeIds(vc: Vcsim, vmRef?: string): Promise<Record<string, unknown>> {
  return hook(vc, 'forget-change-ids', { vm: vmRef });
}

/** Pending failures, live session count, changeIds per "vm/deviceKey". */
export function hookState(vc: Vcsim): Promise<Record<string, unknown>> {
  return hook(vc, 'state', {}, 'GET');
}
