import type { Writable } from 'node:stream';
import type { CodecParams, CodecPool } from '../../engine/index.js';
import type { ProxyRunOptions } from '../../jobs/index.js';
import type { BlockSource } from '../../sources/index.js';
import type { BlobStore } from '../../storage/index.js';
import type {
  StoredVmConfig,
  VsphereBackupOptions,
  VsphereRestoreOptions,
  VsphereVmBackup,
  VsphereVmRestore,
} from '../../vsphere/index.js';
import type { Logger } from '../../shared/index.js';

/** What the CLI needs from the outside world; bin/coffer.ts supplies the real things, tests their own. */
export interface CliDeps {
  env: Record<string, string | undefined>;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  signal: AbortSignal;
  openStore(spec: string, opts: { create: boolean }): Promise<BlobStore>;
  openSource(
    spec: string,
    opts: { logger: Logger; signal: AbortSignal; timeoutMs?: number; format?: 'raw' | undefined },
  ): Promise<BlockSource>;
  createPool(params: CodecParams | Promise<CodecParams>): CodecPool;
  /** asks for a password on the terminal without echo; absent when stdin is not a terminal (then: no prompt) */
  promptPassword?: (question: string) => Promise<string>;
  /** Opens vsphere://HOST/VM for backup: snapshot taken, disks ready; close() removes the snapshot. */
  openVsphere(spec: string, opts: VsphereBackupOptions): Promise<VsphereVmBackup>;
  /** Prepares a restore into vCenter (creates the VM, or takes an existing one with force). */
  openVsphereRestore(spec: string, cfg: StoredVmConfig, opts: VsphereRestoreOptions): Promise<VsphereVmRestore>;
  /**
   * `coffer server`, `coffer token`, `coffer user`: implemented by server/, wired by bin/ (absent in CLI-only tests)
   */
  server?: ServerCommands;
  /** `coffer proxy`: implemented by proxy/, wired by bin/ */
  proxy?: ProxyCommands;
}

/** What `coffer proxy` needs; the composition root implements it with src/proxy. */
export interface ProxyCommands {
  run(o: ProxyRunOptions): Promise<void>;
}

/** What the server commands need; the composition root implements it with src/server. */
export interface ServerCommands {
  run(o: {
    listen: string;
    dataDir: string;
    catalogUrl?: string;
    leaseSeconds?: number;
    localProxy?: boolean;
    configFile?: string;
    tlsCert?: string;
    tlsKey?: string;
    pidFile?: string;
  }): Promise<void>;
  createToken(o: {
    dataDir: string;
    catalogUrl?: string;
    role: string;
    name: string;
  }): Promise<{ id: string; name: string; role: string; token: string }>;
  addUser(o: { dataDir: string; catalogUrl?: string; username: string; password: string; role: string }): Promise<void>;
  /** a consistent copy of DATA/catalog.db (SQLite online backup), also while the server runs */
  backupCatalog(o: {
    dataDir: string;
    to: string;
    force: boolean;
  }): Promise<{ file: string; sizeBytes: number; schemaVersion: number }>;
  /** a catalog backup put in place as DATA/catalog.db (server stopped) */
  restoreCatalog(o: {
    dataDir: string;
    from: string;
    force: boolean;
  }): Promise<{ file: string; schemaVersion: number }>;
}

export function stderrLogger(deps: CliDeps, quiet = false): Logger {
  const w = (level: string) => (msg: string) => {
    if (!quiet || level === 'warning') deps.stderr.write(`${level}: ${msg}\n`);
  };
  return { info: w('info'), warn: w('warning'), debug: () => undefined };
}
