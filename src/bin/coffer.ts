#!/usr/bin/env node
/**
 * Composition root of the `coffer` process: the real blob stores (local, cloud, cached, append-only), the disk sources,
 * the codec worker pools, the vSphere backup and restore openers and the signal handling are constructed here and
 * handed to the CLI (CliDeps) and to `coffer server` (ServerDeps); the engine's use cases get them from there. Not
 * (yet) injected: the vCenter connections of `coffer vsphere inventory|thumbprint` and of the one-disk datastore upload
 * (cli/commands/restore-vsphere.ts), and the server's vCenter VMs (server/vcenters.ts), which connect through
 * src/vsphere directly; the CLI wraps stores opened here (ThrottledBlobStore for `copy --limit-upload`).
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promptHidden, runCli, type CliDeps } from '../cli/index.js';
import { CodecPool } from '../engine/index.js';
import { openSource } from '../sources/index.js';
import { openVsphereBackup, openVsphereRestore } from '../vsphere/index.js';
import {
  APPEND_ONLY_BLOB,
  AppendOnlyBlobStore,
  CachingBlobStore,
  LocalBlobStore,
  isCloudSpec,
  openCloudStore,
  type BlobStore,
} from '../storage/index.js';
import { CofferError } from '../shared/index.js';
import type { ProxyDeps } from '../proxy/index.js';
import type { ServerDeps } from '../server/index.js';

// libuv's pool (4 threads by default) carries every file read, write and fsync: with fsyncs in flight, reads starve.
process.env.UV_THREADPOOL_SIZE ??= '16';
// The AWS SDK warns on Node < 22 about its releases after January 2027; Coffer pins its SDK (package-lock.json) and
// supports Node 20: the warning is for Coffer's maintainers, not for every `coffer` run against s3://.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const controller = new AbortController();
let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write(
        `\ncoffer: ${sig}: cancelling (nothing half-done becomes visible); press Ctrl-C again to quit at once\n`,
      );
      controller.abort(new CofferError('CANCELLED', `cancelled by ${sig}`));
    } else {
      process.exit(130);
    }
  });
}
// A reader that goes away (e.g. `coffer restore ... --target - | head`) is not a crash.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') controller.abort(new CofferError('CANCELLED', 'stdout closed'));
});

const deps: CliDeps = {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
  // a password prompt (no echo) only when a person is at a terminal: scripts and pipes get the USAGE error
  ...(process.stdin.isTTY ? { promptPassword: (q: string) => promptHidden(process.stdin, process.stderr, q) } : {}),
  async openStore(spec, { create }) {
    const store = await openStoreBare(spec, create);
    // An append-only repository (FORMAT.md §9): Coffer refuses every delete but those of leases.
    return (await store.stat(APPEND_ONLY_BLOB)) ? new AppendOnlyBlobStore(store) : store;
  },
  openSource: (spec, opts) => openSource(spec, opts),
  createPool: (params) => new CodecPool(params),
  server: {
    // loaded on demand: the other commands do not pay for fastify, SQLite and mail at start-up
    run: async (o) =>
      (await import('../server/index.js')).runServer({ ...o, logStream: process.stdout }, deps as ServerDeps),
    createToken: async (o) =>
      (await import('../server/index.js')).createApiToken(o.dataDir, o.role, o.name, o.catalogUrl),
    addUser: async (o) =>
      (await import('../server/index.js')).addUser(o.dataDir, o.username, o.password, o.role, o.catalogUrl),
    backupCatalog: async (o) => (await import('../server/index.js')).backupCatalog(o.dataDir, o.to, { force: o.force }),
    restoreCatalog: async (o) =>
      (await import('../server/index.js')).restoreCatalog(o.dataDir, o.from, { force: o.force }),
  },
  proxy: {
    run: async (o) =>
      (await import('../proxy/index.js')).runProxy({ ...o, logStream: process.stdout }, deps as ProxyDeps),
  },
  openVsphere: (spec, opts) => openVsphereBackup(spec, opts),
  openVsphereRestore: (spec, cfg, opts) => openVsphereRestore(spec, cfg, opts),
};

async function openStoreBare(spec: string, create: boolean): Promise<BlobStore> {
  if (isCloudSpec(spec)) {
    const attempts = Number(process.env.COFFER_STORAGE_RETRIES ?? '');
    const store = await openCloudStore(spec, process.env, {
      create,
      retry: Number.isInteger(attempts) && attempts > 0 ? { attempts } : {},
    });
    // manifests and indexes cached locally (DESIGN.md §Cloud repositories); COFFER_CACHE_DIR=off disables
    const cacheDir =
      process.env.COFFER_CACHE_DIR ??
      path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'coffer');
    return cacheDir === 'off' ? store : new CachingBlobStore(store, cacheDir);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !spec.startsWith('file://')) {
    throw new CofferError('USAGE', `unsupported repository location ${spec}`, {
      hint: 'use a directory, azure://ACCOUNT/CONTAINER[/PREFIX] or s3://BUCKET[/PREFIX]',
    });
  }
  const dir = path.resolve(spec.startsWith('file://') ? new URL(spec).pathname : spec);
  if (create) {
    await fs.mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new CofferError(e.code === 'ENOSPC' ? 'STORAGE_FULL' : 'IO', `cannot create ${dir}: ${e.message}`);
    });
  } else {
    const st = await fs.stat(dir).catch(() => undefined);
    if (!st?.isDirectory())
      throw new CofferError('REPO_NOT_FOUND', `${dir} is not a Coffer repository (no such directory)`);
  }
  return new LocalBlobStore(dir);
}

const code = await runCli(process.argv.slice(2), deps);
process.exitCode = code;
// Let stdout drain; workers are closed by the commands. Exit explicitly so a stray handle cannot hang the CLI.
process.stdout.write('', () => process.exit(code));
