import type { Readable } from 'node:stream';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import { HttpDatastoreTransport } from './disk-transport.js';
import type { TlsPolicy } from './https-client.js';
import { loadInventory } from './inventory.js';
import type { StoredVmConfig } from './vm-config.js';
import { destroyVm, powerOnVm, prepareVmRestore } from './vm-restore.js';
import { connectVsphere, parseVsphereUrl } from './vsphere-url.js';

export interface VsphereRestoreOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  datastore: string;
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  force?: boolean;
}

/** A restore into vCenter in progress: upload each disk, then finish (power on) or abort (delete a VM we created). */
export interface VsphereVmRestore {
  vmName: string;
  vmId: string;
  created: boolean;
  disks: { fileName: string; capacityBytes: number }[];
  warnings: string[];
  upload(disk: number, body: Readable, op?: Op): Promise<string>;
  finish(opts: { powerOn: boolean }): Promise<void>;
  /** Deletes the VM when this restore created it (never an existing VM). */
  abort(): Promise<void>;
  close(): Promise<void>;
}

/** Restore of a whole VM: `coffer restore ID --to vsphere://HOST/NEWNAME --datastore DS` (DESIGN.md §vSphere). */
export async function openVsphereRestore(
  spec: string,
  cfg: StoredVmConfig,
  opts: VsphereRestoreOptions,
): Promise<VsphereVmRestore> {
  const url = parseVsphereUrl(spec);
  const name = url.vm;
  if (!name)
    throw new CofferError('USAGE', `--to ${url.display}: name the VM to create (vsphere://HOST[:PORT]/NEWNAME)`);
  if (name.includes('/') || /[*?[]/.test(name))
    throw new CofferError(
      'USAGE',
      `--to: ${JSON.stringify(name)} is not a plain VM name (use --folder for the location)`,
    );
  const client = await connectVsphere(url, { tls: opts.tls, env: opts.env, logger: opts.logger, signal: opts.signal });
  try {
    const inv = await loadInventory(client, opts);
    const t = await prepareVmRestore(client, inv, cfg, {
      name,
      datastore: opts.datastore,
      folder: opts.folder,
      pool: opts.pool,
      host: opts.host,
      force: opts.force ?? false,
      logger: opts.logger,
      signal: opts.signal,
    });
    const transport = new HttpDatastoreTransport({
      http: client.http,
      cookie: () => client.sessionCookie,
      logger: opts.logger,
    });
    return {
      vmName: name,
      vmId: t.vm.value,
      created: t.created,
      disks: t.disks,
      warnings: t.warnings,
      upload: (i, body, op) => transport.upload(t.disks[i]!, t.datacenter, body, op),
      async finish({ powerOn }) {
        if (powerOn) await powerOnVm(client, t.vm, opts);
      },
      async abort() {
        if (t.created)
          await destroyVm(client, t.vm).catch((e: Error) =>
            opts.logger?.warn(`could not delete the half-restored VM ${name}: ${e.message}`),
          );
      },
      close: () => client.close(),
    };
  } catch (e) {
    await client.close();
    throw e;
  }
}

/** Restore of one disk to a datastore file: `--disk N --to vsphere://HOST --datastore DS --path DIR/FILE.vmdk`. */
export async function uploadToDatastore(
  spec: string,
  opts: VsphereRestoreOptions & {
    path: string;
    sizeBytes: number;
    body: () => Readable;
    run: (body: Readable) => Promise<unknown>;
  },
): Promise<{ fileName: string }> {
  const url = parseVsphereUrl(spec);
  const client = await connectVsphere(url, { tls: opts.tls, env: opts.env, logger: opts.logger, signal: opts.signal });
  try {
    const inv = await loadInventory(client, opts, { vmConfig: false });
    const ds = inv.datastores.find((d) => d.name === opts.datastore);
    if (!ds?.datacenter)
      throw new CofferError('NOT_FOUND', `no datastore ${JSON.stringify(opts.datastore)} in vCenter`);
    const path = opts.path.replace(/^\/+/, '');
    if (!path || path.split('/').some((p) => p === '..' || p === ''))
      throw new CofferError('USAGE', `--path ${JSON.stringify(opts.path)} is not a datastore-relative file path`);
    const transport = new HttpDatastoreTransport({
      http: client.http,
      cookie: () => client.sessionCookie,
      logger: opts.logger,
    });
    if (!opts.force && (await transport.exists(ds.datacenter, ds.name, path, opts))) {
      throw new CofferError('TARGET_EXISTS', `[${ds.name}] ${path} exists`, { hint: 'pass --force to overwrite it' });
    }
    const body = opts.body();
    const put = transport.put(ds.datacenter, ds.name, path, body, opts.sizeBytes, opts);
    put.catch((e: Error) => body.destroy(e));
    await Promise.all([put, opts.run(body)]);
    return { fileName: `[${ds.name}] ${path}` };
  } finally {
    await client.close();
  }
}
