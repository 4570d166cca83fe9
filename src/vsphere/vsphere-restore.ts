import type { Readable } from 'node:stream';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import { HttpDatastoreTransport } from './disk-transport.js';
import type { TlsPolicy } from './https-client.js';
import { loadInventory } from './inventory.js';
import type { StoredVmConfig } from './vm-config.js';
import { NfcImport } from './nfc/nfc-import.js';
import { homeFile, uploadNvram, vmxHasVtpm } from './restore-home-files.js';
import { retrieveOne } from './property-collector.js';
import type { VimClient } from './vim-client.js';
import { parseConfigInfo } from './vm-model.js';
import {
  destroyVm,
  findInPlaceTarget,
  planNewVm,
  powerOnVm,
  type NewVmPlan,
  type VmRestoreTarget,
} from './vm-restore.js';
import type { SoapObject } from './xml.js';
import { applyVmMetadata, diskProfileSpec, planVmMetadata, type MetadataPlan } from './vm-metadata.js';
import { streamOptimizedVmdk, type StreamOptimizedStats } from '../sources/index.js';
import { connectVsphere, parseVsphereUrl } from './vsphere-url.js';

export interface VsphereRestoreOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  datastore: string;
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  /** datacenter name or path (needed when the datastore name exists in several) */
  datacenter?: string | undefined;
  /** storage policy (name at the target) for every disk of a new VM; default: each disk's stored one, by name */
  storagePolicy?: string | undefined;
  force?: boolean;
  networkMap?: Record<string, string> | undefined;
  nicsDisconnected?: boolean | undefined;
  keepMac?: boolean | undefined;
  keepUuid?: boolean | undefined;
  /** validate everything and return the plan (`plan`), create nothing */
  dryRun?: boolean | undefined;
}

/** What a restore would do (`--dry-run`), everything validated against vCenter. */
export interface VsphereRestorePlan {
  vm: string;
  mode: 'new VM (NFC import)' | 'in place';
  datacenter: string;
  datastore: string;
  folder?: string | undefined;
  pool?: string | undefined;
  host?: string | undefined;
  existingVm?: string | undefined;
  disks: { capacityBytes: number; fileName?: string | undefined; storagePolicy?: string | null }[];
  /** tags attached to a new VM (category/name), those the target lacks are warnings */
  tags?: string[];
  /** custom attributes set on a new VM (name) */
  customAttributes?: string[];
  nics: { type: string; network: string; backing: string; macAddress: string | null; connected: boolean }[];
  /** firmware of the stored configuration (bios, efi) */
  firmware: string | null;
  /** the restore point holds the VM's .nvram: a new VM gets it in its home folder before power-on */
  nvram: boolean;
  /** the VM had a virtual TPM at backup time (not re-created: its secrets live with the key provider) */
  vtpm: boolean;
  warnings: string[];
}

/** A restore into vCenter in progress: upload each disk, then finish (power on) or abort (delete a VM we created). */
export interface VsphereVmRestore {
  vmName: string;
  vmId: string;
  created: boolean;
  /** nfc: a new VM by ImportVApp (streamOptimized uploads); folder: in place, into verified flat extents */
  transport: 'nfc' | 'folder';
  disks: { fileName: string; capacityBytes: number }[];
  warnings: string[];
  /** with dryRun: what would be done (nothing was created; upload must not be called) */
  plan?: VsphereRestorePlan;
  /** bytes sent to vCenter/ESXi for the disks so far */
  bytesSent(): number;
  upload(disk: number, body: Readable, op?: Op): Promise<string>;
  finish(opts: { powerOn: boolean }): Promise<void>;
  /** Deletes the VM when this restore created it (never an existing VM). */
  abort(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Restore of a whole VM: `coffer restore ID --to vsphere://HOST/NEWNAME --datastore DS` (DESIGN.md §vSphere). A new VM
 * is imported over NFC (every datastore type, vSAN included: no /folder writes); an existing powered-off VM (--force)
 * gets its disks written in place through /folder, into the flat extents its descriptors name, nothing else.
 */
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
    const ro = {
      name,
      datastore: opts.datastore,
      datacenter: opts.datacenter,
      folder: opts.folder,
      pool: opts.pool,
      host: opts.host,
      force: opts.force ?? false,
      networkMap: opts.networkMap,
      nicsDisconnected: opts.nicsDisconnected,
      keepMac: opts.keepMac,
      keepUuid: opts.keepUuid,
      logger: opts.logger,
      signal: opts.signal,
    };
    const inPlace = findInPlaceTarget(inv, cfg, ro);
    if (inPlace && opts.storagePolicy !== undefined)
      throw new CofferError(
        'USAGE',
        '--storage-policy applies to a new VM; an in-place restore keeps the disks as they are',
      );
    if (inPlace && !opts.dryRun) return inPlaceRestore(client, name, inPlace, opts);
    const plan = inPlace ? undefined : await planNewVm(client, inv, cfg, ro);
    // storage policies, tags, custom attributes resolved at the target before anything is created
    const meta = plan ? await planVmMetadata(client, cfg, opts) : undefined;
    if (plan && meta) {
      const disks = (plan.spec['deviceChange'] as SoapObject[]).filter(
        (c) => (c['device'] as SoapObject)['_type'] === 'VirtualDisk',
      );
      for (const [i, c] of disks.entries()) {
        const p = meta.storagePolicies[i];
        if (p) c['profile'] = diskProfileSpec(p);
      }
      plan.warnings.push(...meta.warnings);
    }
    if (opts.dryRun) return dryRunTarget(client, name, cfg, opts, inPlace, plan, meta);
    return await nfcRestore(client, name, cfg, plan!, meta!, opts);
  } catch (e) {
    await client.close();
    throw e;
  }
}

function dryRunTarget(
  client: VimClient,
  name: string,
  cfg: StoredVmConfig,
  opts: VsphereRestoreOptions,
  inPlace: VmRestoreTarget | undefined,
  plan: NewVmPlan | undefined,
  meta?: MetadataPlan,
): VsphereVmRestore {
  const p: VsphereRestorePlan = inPlace
    ? {
        vm: name,
        mode: 'in place',
        datacenter: inPlace.datacenter,
        datastore: opts.datastore,
        existingVm: inPlace.vm.value,
        disks: inPlace.disks,
        nics: [],
        ...identity(cfg, false),
        warnings: [...inPlace.warnings, ...identityWarnings(cfg)],
      }
    : {
        vm: name,
        mode: 'new VM (NFC import)',
        datacenter: plan!.datacenter,
        datastore: opts.datastore,
        folder: plan!.folder.path,
        pool: plan!.pool.path,
        host: plan!.host?.path,
        disks: cfg.disks.map((d, i) => ({
          capacityBytes: d.capacityBytes,
          storagePolicy: meta?.storagePolicies[i]?.name ?? null,
        })),
        tags: meta?.tags.map((t) => `${t.category}/${t.name}`) ?? [],
        customAttributes: meta?.customAttributes.map((a) => a.name) ?? [],
        nics: plan!.nics,
        ...identity(cfg, true),
        warnings: [...plan!.warnings, ...identityWarnings(cfg)],
      };
  const nothing = () => {
    throw new CofferError('INTERNAL', 'a dry run uploads nothing');
  };
  return {
    vmName: name,
    vmId: inPlace?.vm.value ?? '',
    created: false,
    transport: inPlace ? 'folder' : 'nfc',
    disks: p.disks.map((d) => ({ fileName: d.fileName ?? '', capacityBytes: d.capacityBytes })),
    warnings: p.warnings,
    plan: p,
    bytesSent: () => 0,
    upload: nothing,
    finish: nothing,
    async abort() {},
    close: () => client.close(),
  };
}

function inPlaceRestore(
  client: VimClient,
  name: string,
  t: VmRestoreTarget,
  opts: VsphereRestoreOptions,
): VsphereVmRestore {
  const transport = new HttpDatastoreTransport({
    http: client.http,
    cookie: () => client.sessionCookie,
    logger: opts.logger,
  });
  let sent = 0;
  return {
    vmName: name,
    vmId: t.vm.value,
    created: false,
    transport: 'folder',
    disks: t.disks,
    warnings: t.warnings,
    bytesSent: () => sent,
    upload: async (i, body, op) => {
      const p = await transport.upload(t.disks[i]!, t.datacenter, body, op);
      sent += t.disks[i]!.capacityBytes;
      return p;
    },
    async finish({ powerOn }) {
      if (powerOn) await powerOnVm(client, t.vm, opts);
    },
    async abort() {},
    close: () => client.close(),
  };
}

/** What the plan says about identity: firmware, the stored .nvram (written into a new VM only), a vTPM. */
function identity(cfg: StoredVmConfig, newVm: boolean) {
  return {
    firmware: cfg.firmware,
    nvram: newVm && homeFile(cfg.homeFiles, 'nvram') !== undefined,
    vtpm: Boolean(cfg.vtpm) || vmxHasVtpm(cfg.homeFiles),
  };
}

function identityWarnings(cfg: StoredVmConfig): string[] {
  const w: string[] = [];
  if (cfg.vtpm || vmxHasVtpm(cfg.homeFiles))
    w.push(
      'the VM had a virtual TPM: it is not re-created (its keys stay with the key provider); add a vTPM to the ' +
        'restored VM if the guest needs it (BitLocker asks for its recovery key)',
    );
  if (cfg.firmware === 'efi' && !homeFile(cfg.homeFiles, 'nvram'))
    w.push('an EFI VM without a stored .nvram: its boot entries are not restored (the firmware scans for a loader)');
  return w;
}

/** ImportVApp from the plan's ConfigSpec; each disk becomes a streamOptimized VMDK POSTed to its device URL. */
async function nfcRestore(
  client: VimClient,
  name: string,
  cfg: StoredVmConfig,
  plan: NewVmPlan,
  meta: MetadataPlan,
  opts: VsphereRestoreOptions,
): Promise<VsphereVmRestore> {
  const nfc = await NfcImport.start(
    client,
    { pool: plan.pool.ref, folder: plan.folder.ref, host: plan.host?.ref, configSpec: plan.spec },
    { signal: opts.signal, logger: opts.logger },
  );
  let completed = false;
  let leaseDone = false;
  const abort = async () => {
    if (completed) return;
    if (!leaseDone) await nfc.abort('the restore failed or was cancelled');
    await destroyVm(client, nfc.vm).catch((e: Error) => {
      if (!/ManagedObjectNotFound|does not exist/.test(e.message))
        opts.logger?.warn(`could not delete the half-restored VM ${name}: ${e.message}`);
    });
  };
  let disks: { fileName: string; capacityBytes: number }[];
  try {
    const cfgNode = (await retrieveOne(client, nfc.vm, ['config'], opts)).props.get('config');
    if (!cfgNode) throw new CofferError('VSPHERE_FAULT', `vCenter sent no configuration for the new VM ${name}`);
    disks = parseConfigInfo(cfgNode).disks.map((d) => ({ fileName: d.fileName, capacityBytes: d.capacityBytes }));
    const want = plan.spec['deviceChange'] as SoapObject[];
    const nDisks = want.filter((d) => (d['device'] as SoapObject)['_type'] === 'VirtualDisk').length;
    if (disks.length !== nDisks)
      throw new CofferError('VSPHERE_FAULT', `the imported VM ${name} has ${disks.length} disks, not ${nDisks}`);
  } catch (e) {
    await abort();
    throw e;
  }
  const warnings = [...plan.warnings, ...identityWarnings(cfg)];
  for (const w of warnings) opts.logger?.warn(w);
  const total = disks.reduce((a, d) => a + d.capacityBytes, 0) || 1;
  let rawDone = 0;
  let sent = 0;
  return {
    vmName: name,
    vmId: nfc.vm.value,
    created: true,
    transport: 'nfc',
    disks,
    warnings,
    bytesSent: () => sent,
    async upload(i, body, op) {
      const d = disks[i]!;
      const counted = (async function* () {
        for await (const b of body as AsyncIterable<Buffer>) {
          rawDone += b.length;
          nfc.progress((rawDone / total) * 100);
          yield b;
        }
      })();
      const stats: StreamOptimizedStats = { grains: 0, zeroGrains: 0, bytesOut: 0 };
      const vmdk = streamOptimizedVmdk(
        counted,
        { capacityBytes: d.capacityBytes, fileName: d.fileName.replace(/^.*[/\]]\s*/, '') },
        stats,
      );
      sent += await nfc.upload(nfc.diskUrl(i, d.fileName), vmdk, op);
      opts.logger?.debug(
        `disk ${i}: ${stats.grains} grains sent, ${stats.zeroGrains} zero grains skipped (${stats.bytesOut} bytes)`,
      );
      return d.fileName;
    },
    async finish({ powerOn }) {
      await nfc.complete(opts);
      leaseDone = true;
      // the EFI variables (boot entries) before the first power-on; failing here deletes the VM like any failure
      const nvram = homeFile(cfg.homeFiles, 'nvram');
      if (nvram) {
        const t = new HttpDatastoreTransport({
          http: client.http,
          cookie: () => client.sessionCookie,
          logger: opts.logger,
        });
        const at = await uploadNvram(client, t, nfc.vm, plan.datacenter, nvram, opts);
        opts.logger?.info(`wrote the stored .nvram (${nvram.length} bytes) to ${at}`);
      }
      completed = true;
      // tags and custom attributes: the VM and its disks are there; a failure here is a warning
      for (const w of await applyVmMetadata(client, nfc.vm, meta, opts)) {
        opts.logger?.warn(w);
        warnings.push(w);
      }
      if (powerOn) await powerOnVm(client, nfc.vm, opts);
    },
    abort,
    close: () => client.close(),
  };
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
