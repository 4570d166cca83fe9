/**
 * The response side of the API as the console reads it. The OpenAPI document describes requests only (see
 * openapi.gen.ts); these types are checked against real responses by test/server-console-api.test.ts through the
 * key lists of shapes.ts, and `Responses` may only name operations that exist in the generated `Paths`.
 */
import type { Paths } from './openapi.gen.js';

export interface ApiErrorBody {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
export type Role = 'admin' | 'operator' | 'restore-operator' | 'viewer';
export interface Me {
  actor: string;
  role: Role;
}
export type JobState = 'queued' | 'retrying' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type JobKind = 'backup' | 'restore' | 'restore-vm' | 'verify' | 'prune' | 'check';
export interface JobError {
  code: string;
  message: string;
}
export interface Vm {
  name: string;
  protected: boolean;
  covered: boolean;
  failing: boolean;
  policies: string[];
  inInventory: boolean;
  lastPoint: { id: string; repository: string; time: string; endTime: string } | null;
  lastJob: { id: number; status: JobState; finishedAt: string | null; error: JobError | null } | null;
  rpoHours: number | null;
  rpoCompliant: boolean | null;
  ageSeconds: number | null;
  points: number;
}
export interface RepositoryStats {
  name: string;
  location: string;
  storedBytes: number;
  chunkBytes: number;
  logicalBytes: number;
  chunks: number;
  points: number;
  dedupRatio: number | null;
  updatedAt: string | null;
  error: string | null;
}
export interface Dashboard {
  vms: { total: number; protected: number; unprotected: number; failing: number; compliant: number; breached: number };
  repositories: RepositoryStats[];
  trend: { day: string; points: number; bytesStored: number; bytesRead: number }[];
  failures: { day: string; failed: number }[];
  failingVms: { name: string; job: number; finishedAt: string | null; error: JobError | null }[];
  jobs: { status: string; n: number }[];
}
export interface PointDisk {
  index: number;
  sizeBytes: number;
  chunkCount: number;
  zeroChunks: number;
  source: string;
}
export interface RestorePoint {
  id: string;
  repository: string;
  vm: string;
  time: string;
  endTime: string;
  mode: string;
  parent: string | null;
  tags: string[];
  disks: PointDisk[];
  bytesRead: number;
  bytesStored: number;
  verification: { ok: boolean; time?: string } | null;
  /** the anomaly state (suspicious / failed / verified / clean) and its signals; null for points of older catalogs */
  status: {
    state: string;
    suspicious: boolean;
    score: number | null;
    reasons: string[];
    /** the newest recoverability check; `boot`: its boot part (FORMAT.md §8.1), null when it did not boot */
    check?: { ok: boolean; time?: string; boot?: BootSummary | null } | null;
  } | null;
}
/** The boot part of a point's newest check (`coffer check --boot`), as the catalog summarises it. */
export interface BootSummary {
  ok: boolean | null;
  /** the success signal: the marker on the serial console, or the guest agent's answer */
  signal: 'marker' | 'agent';
  marker: string;
  ended: string | null;
  elapsedMs: number;
  accel: string | null;
  note: string | null;
  script: {
    path: string;
    ok: boolean;
    exitCode: number | null;
    signal: string | null;
    timedOut: boolean;
    elapsedMs: number;
    output: string;
  } | null;
}
export interface Job {
  id: number;
  kind: JobKind;
  status: JobState;
  trigger: string;
  policyId: string | null;
  vm: string | null;
  repository: string;
  params: Record<string, unknown>;
  attempt: number;
  maxAttempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  requestedBy: string;
  error: JobError | null;
  progress: { bytesDone: number; bytesTotal: number } | null;
  retryAt?: string;
  /** the proxy that ran (or runs) it: a `coffer proxy` name, or `local:...` for a server's built-in one */
  proxy?: string | null;
  /** why a queued job has not started (no capable proxy online, a limit reached) */
  waitReason?: string | null;
}
export interface JobLogLine {
  seq: number;
  time: string;
  level: string;
  message: string;
}
export type VmSelector = { pattern: string } | { name: string; disks?: string[] } | { vcenter: string; name?: string };
export type PolicySpec = Paths['/api/v1/policies']['post']['body'];
export interface Policy {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  repository: string;
  vms: PolicySpec['vms'];
  schedule?: string;
  rpoHours: number;
  retention?: PolicySpec['retention'];
  pruneAfterForget: boolean;
  verify?: PolicySpec['verify'];
  tags: string[];
  retentionStatus: { status: string };
  retentionKeeps: string[];
  nextRuns: { backup: string | null; verify: string | null };
  resolvedVms: { vms: { name: string }[]; missing: string[]; vcenterErrors: unknown[] };
}
export interface User {
  username: string;
  role: Role;
  createdAt?: string;
}
export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}
export interface AuditRecord {
  id: number;
  time: string;
  actor: string;
  action: string;
  target: string;
  remote: string;
  status: number;
  details: Record<string, unknown> | null;
}
export interface Partition {
  number: number;
  startBytes: number;
  sizeBytes: number;
  type: string;
  name?: string | null;
  filesystem?: string | null;
  container?: boolean;
  problem?: string | null;
}
export interface FileEntry {
  name: string;
  path: string;
  type: string;
  mode: number;
  size: number;
  mtime: string | null;
  linkTarget?: string;
  error?: JobError;
}
export type Listing =
  | { kind: 'partitions'; scheme: string; sizeBytes: number; items: Partition[] }
  | {
      kind: 'directory';
      filesystem: string;
      total: number;
      items: FileEntry[];
      nextCursor: string | null;
      warnings: string[];
    }
  | { kind: 'file'; filesystem: string; entry: FileEntry; warnings: string[]; nextCursor: null };
export interface FindResult {
  items: { path: string; type: string; size: number; mtime: string | null }[];
  entriesWalked: number;
  notes: string[];
}
/** GET /api/v1/proxies: a data mover (`coffer proxy`, or a server's built-in one) */
export interface ProxyInfo {
  owner: string;
  name: string;
  local: boolean;
  version: string;
  capabilities: {
    kinds: string[];
    transports: string[];
    repositories: string[] | null;
    vcenters: string[] | null;
    clusters: string[] | null;
    datastores: string[] | null;
  };
  concurrency: number;
  drained: boolean;
  registeredAt: string;
  lastHeartbeat: string;
  state: 'online' | 'draining' | 'drained' | 'offline';
  running: number;
  jobs: number[];
}

/** GET /api/v1/vcenters: a configured vCenter (a restore-vm target) */
export interface VcenterInfo {
  name: string;
  error: { code: string; message: string } | null;
}
/** GET /api/v1/restore-points/{id}/vm-config: what a restore-vm job recreates (empty lists for a disk backup) */
export interface StoredVmConfig {
  id: string;
  repository: string;
  vm: string;
  vsphere: boolean;
  datacenter?: string | null;
  folder?: string | null;
  pool?: string | null;
  host?: string | null;
  firmware?: string | null;
  nics: { index: number; type: string; network: string | null; macAddress: string | null }[];
  disks: { index: number; capacityBytes: number; datastore: string }[];
}
/** an instant recovery being served: one disk of a point as an NBD export */
export interface InstantRecovery {
  id: string;
  uri: string;
  pointId: string;
  repository: string;
  vm: string;
  disk: number;
  sizeBytes: number;
  writable: boolean;
  overlay: string | null;
  startedAt: string;
  startedBy: string;
}

/** What each operation the console calls answers (key: "method path", as in Paths). */
export interface Responses {
  'get /api/v1/me': Me;
  'post /api/v1/auth/login': { token: string };
  'post /api/v1/auth/logout': unknown;
  'get /api/v1/vms': Page<Vm>;
  'get /api/v1/dashboard': Dashboard;
  'get /api/v1/restore-points': Page<RestorePoint>;
  'get /api/v1/restore-points/{id}/disks/{disk}/files': Listing;
  'get /api/v1/restore-points/{id}/disks/{disk}/find': FindResult;
  'get /api/v1/restore-points/{id}/disks/{disk}/diff': unknown;
  'get /api/v1/repositories': Page<RepositoryStats>;
  'post /api/v1/repositories/{id}/refresh': RepositoryStats;
  'get /api/v1/policies': Page<Policy>;
  'get /api/v1/policies/{id}': Policy;
  'post /api/v1/policies': Policy;
  'put /api/v1/policies/{id}': Policy;
  'delete /api/v1/policies/{id}': { deleted: string };
  'get /api/v1/restore-points/{id}/vm-config': StoredVmConfig;
  'get /api/v1/vcenters': { items: VcenterInfo[] };
  'get /api/v1/instant-recoveries': { items: InstantRecovery[] };
  'post /api/v1/instant-recoveries': InstantRecovery;
  'delete /api/v1/instant-recoveries/{id}': InstantRecovery & { stopped: true };
  'get /api/v1/jobs': Page<Job>;
  'post /api/v1/jobs': { items: Job[] };
  'get /api/v1/jobs/{id}': Job & { logs: JobLogLine[] };
  'post /api/v1/jobs/{id}/cancel': Job;
  'get /api/v1/audit': Page<AuditRecord>;
  'get /api/v1/users': Page<User>;
  'post /api/v1/users': User;
  'delete /api/v1/users/{id}': unknown;
  'get /api/v1/tokens': Page<ApiToken>;
  'post /api/v1/tokens': { id: string; name: string; role: Role; token: string; expiresAt: string | null };
  'delete /api/v1/tokens/{id}': unknown;
  'get /api/v1/proxies': Page<ProxyInfo>;
  'post /api/v1/proxies/{id}/drain': ProxyInfo;
  'post /api/v1/proxies/{id}/undrain': ProxyInfo;
}

/** Fails to compile when Responses names an operation the server's OpenAPI document does not have. */
type Known<K> = K extends `${infer M} ${infer P}`
  ? P extends keyof Paths
    ? M extends keyof Paths[P]
      ? true
      : false
    : false
  : false;
export type ResponsesAreKnown =
  { [K in keyof Responses]: Known<K> } extends Record<keyof Responses, true> ? true : never;
export const RESPONSES_ARE_KNOWN: ResponsesAreKnown = true;
