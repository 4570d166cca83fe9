import { createHash } from 'node:crypto';
import { mkdir, open as openFile, readFile, realpath, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CofferError, silentLogger, type Logger, type Op } from '../../shared/index.js';
import type { DiskReader, DiskTransport } from '../disk-transport.js';
import type { Inventory, VmInfo } from '../inventory.js';
import { retrieveOne } from '../property-collector.js';
import { runTask } from '../task.js';
import type { VimClient } from '../vim-client.js';
import { parseConfigInfo, type VmDisk } from '../vm-model.js';
import type { XmlNode } from '../xml.js';

export interface HotAddOptions {
  client: VimClient;
  inventory: Inventory;
  /** The VM Coffer runs in; default: the VM whose BIOS UUID is this machine's SMBIOS UUID. */
  proxyVm?: string | undefined;
  /** SMBIOS UUID file (default /sys/class/dmi/id/product_uuid; tests inject another). */
  productUuidPath?: string | undefined;
  /** Where attached disks appear (default /dev/disk/by-id; COFFER_DISK_BY_ID_DIR for tests). */
  byIdDir?: string | undefined;
  /** How long an attached disk may take to appear (default 60 s). */
  appearTimeoutMs?: number;
  /** Where attachments are recorded (pid, disk) so a later run can detach what a killed process left (default
   *  $TMPDIR/coffer-hotadd; COFFER_HOTADD_STATE_DIR). */
  stateDir?: string | undefined;
  /** Attach the disks persistent and open them read-write (quick rollback writes a powered-off VM's own disks);
   *  default: independent-nonpersistent, read-only (backups). */
  writable?: boolean | undefined;
  logger?: Logger | undefined;
}

/** The hot-add settings a process takes from its environment (tests point them into a sandbox; see OPERATIONS.md). */
export function hotAddEnv(
  env: Record<string, string | undefined>,
): Pick<HotAddOptions, 'productUuidPath' | 'byIdDir' | 'appearTimeoutMs' | 'stateDir'> {
  const timeout = env['COFFER_HOTADD_TIMEOUT_MS'];
  return {
    productUuidPath: env['COFFER_PRODUCT_UUID_PATH'],
    byIdDir: env['COFFER_DISK_BY_ID_DIR'],
    ...(timeout ? { appearTimeoutMs: Number(timeout) } : {}),
    stateDir: env['COFFER_HOTADD_STATE_DIR'],
  };
}

/** A hot-added disk opened with `writable`: positioned writes into the attached device. */
export interface DiskWriter extends DiskReader {
  write(offset: number, data: Buffer, op?: Op): Promise<void>;
}

/** One attachment made by a Coffer process (a file in the state directory while the disk is attached). */
interface AttachRecord {
  host: string;
  pid: number;
  proxy: string;
  fileName: string;
  at: string;
}

/** The by-id name a Linux guest gives a disk with disk.EnableUUID=TRUE: wwn-0x<uuid, lower case, no dashes>. */
export function wwnName(uuid: string): string {
  return `wwn-0x${uuid.replace(/[\s-]/g, '').toLowerCase()}`;
}

/** SMBIOS reports the first three UUID fields little-endian on some firmware: both spellings, normalised. */
export function uuidForms(u: string): string[] {
  const h = u.trim().replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(h)) return [];
  const swap = (s: string) => s.match(/../g)!.reverse().join('');
  return [h, swap(h.slice(0, 8)) + swap(h.slice(8, 12)) + swap(h.slice(12, 16)) + h.slice(16)];
}

/**
 * HotAdd (DESIGN.md §vSphere, transports): Coffer runs on a Linux proxy VM in the cluster and attaches each snapshot
 * disk to itself with ReconfigVM_Task (an existing disk: no fileOperation, independent-nonpersistent so nothing the
 * proxy does is written to it), finds it under /dev/disk/by-id/wwn-0x<backing uuid> and reads it as a block device.
 * close() detaches it again (device remove without fileOperation: nothing on the datastore is destroyed).
 */
export class HotAddTransport implements DiskTransport {
  readonly name = 'hotadd';
  private proxy: VmInfo | undefined;
  private readonly logger: Logger;
  constructor(private readonly o: HotAddOptions) {
    this.logger = o.logger ?? silentLogger;
  }

  /** The proxy VM: --proxy-vm NAME, else the VM whose BIOS UUID is this machine's. */
  async findProxy(): Promise<VmInfo> {
    if (this.proxy) return this.proxy;
    const vms = this.o.inventory.vms;
    if (this.o.proxyVm) {
      const p = vms.find((v) => v.name === this.o.proxyVm || v.ref.value === this.o.proxyVm);
      if (!p)
        throw new CofferError(
          'VSPHERE_TRANSPORT',
          `hot-add: the proxy VM ${JSON.stringify(this.o.proxyVm)} is not in vCenter's inventory`,
          { hint: 'name the VM Coffer runs in with --proxy-vm NAME' },
        );
      return (this.proxy = p);
    }
    const path = this.o.productUuidPath ?? '/sys/class/dmi/id/product_uuid';
    let raw: string;
    try {
      raw = await readFile(path, 'utf8');
    } catch (e) {
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: cannot read this machine's SMBIOS UUID (${path}: ${(e as Error).message}); is Coffer running in a ` +
          `VM of this vCenter?`,
        { hint: 'run as root on the proxy VM, or name it with --proxy-vm NAME' },
      );
    }
    const mine = new Set(uuidForms(raw));
    const p = vms.find((v) => v.config?.uuid && uuidForms(v.config.uuid).some((f) => mine.has(f)));
    if (!p)
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: no VM in vCenter has this machine's BIOS UUID ${raw.trim()}: Coffer is not ` +
          `running in a VM of this vCenter`,
        {
          hint:
            'use --transport nbd (VDDK) or http, or run Coffer on a Linux VM in the cluster (or ' +
            'name it with --proxy-vm NAME)',
        },
      );
    return (this.proxy = p);
  }

  private stateDir(): string {
    return this.o.stateDir ?? join(tmpdir(), 'coffer-hotadd');
  }

  private recordPath(fileName: string): string {
    return join(this.stateDir(), `${createHash('sha256').update(fileName).digest('hex').slice(0, 32)}.json`);
  }

  /**
   * Detaches disks a killed Coffer process left on the proxy: disks attached by Coffer (a record in the state
   * directory) whose process is gone. Disks attached by anyone else (another backup product hot-adds the same way)
   * are reported, never touched.
   */
  async recoverStale(op: Op = {}): Promise<string[]> {
    const proxy = await this.findProxy();
    const cfg = parseConfigInfo(
      need((await retrieveOne(this.o.client, proxy.ref, ['config'], op)).props.get('config')),
    );
    const ownDir = (cfg.vmPathName ?? '').replace(/[^/\]]*$/, '');
    const detached: string[] = [];
    for (const d of cfg.disks) {
      if (d.diskMode !== 'independent_nonpersistent' || (ownDir && d.fileName.startsWith(ownDir))) continue;
      let rec: AttachRecord | undefined;
      try {
        rec = JSON.parse(await readFile(this.recordPath(d.fileName), 'utf8')) as AttachRecord;
      } catch {
        rec = undefined;
      }
      if (!rec || rec.fileName !== d.fileName) {
        this.logger.warn(
          `hot-add: ${d.fileName} is attached to the proxy VM ${proxy.name}, not by Coffer (another backup ` +
            `product?); left alone`,
        );
        continue;
      }
      if (rec.host === hostname() && pidAlive(rec.pid)) continue; // a running Coffer process reads it
      this.logger.warn(
        `hot-add: detaching ${d.fileName} from ${proxy.name}: left by Coffer process ${rec.pid} ` +
          `(started ${rec.at}), which is gone`,
      );
      await this.detachDevice(proxy, d.fileName);
      await rm(this.recordPath(d.fileName), { force: true });
      detached.push(d.fileName);
    }
    return detached;
  }

  private async detachDevice(proxy: VmInfo, fileName: string): Promise<void> {
    const client = this.o.client;
    const cur = parseConfigInfo(need((await retrieveOne(client, proxy.ref, ['config'])).props.get('config')));
    const att = cur.disks.find((d) => d.fileName === fileName);
    if (!att) return;
    // device remove WITHOUT fileOperation: the disk's files stay (fileOperation destroy would delete them)
    const dev = {
      _type: 'VirtualDisk',
      key: att.key,
      backing: { _type: att.backingType, fileName: att.fileName, diskMode: att.diskMode },
      controllerKey: att.controllerKey,
      unitNumber: att.unitNumber,
      capacityInKB: Math.ceil(att.capacityBytes / 1024),
    } as never;
    await runTask(
      client,
      'ReconfigVM_Task',
      proxy.ref,
      { spec: { _type: 'VirtualMachineConfigSpec', deviceChange: [{ operation: 'remove', device: dev }] } },
      `detaching ${fileName} from ${proxy.name}`,
      { timeoutMs: 10 * 60_000 },
    );
  }

  /** Prerequisites: same datacenter, the datastore mounted on the proxy's host, a free SCSI slot (after detaching
   *  what a killed Coffer left). */
  async check(vm: VmInfo, disks: VmDisk[], op: Op = {}, how: { recover?: boolean } = {}): Promise<void> {
    const proxy = await this.findProxy();
    if (how.recover !== false) await this.recoverStale(op); // `coffer vsphere check` changes nothing
    if (proxy.ref.equals(vm.ref))
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: ${vm.name} is the proxy VM itself; back it up with --transport nbd or http`,
      );
    if (proxy.datacenter?.ref.value !== vm.datacenter?.ref.value) {
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: the proxy VM ${proxy.name} is in datacenter ${proxy.datacenter?.name ?? '?'}, ${vm.name} ` +
          `in ${vm.datacenter?.name ?? '?'}`,
        { hint: 'run Coffer on a proxy VM in the same datacenter and cluster' },
      );
    }
    if (proxy.host) {
      const h = await retrieveOne(this.o.client, proxy.host, ['datastore'], op);
      const mounted = new Set((h.props.get('datastore')?.children ?? []).map((x) => x.text.trim()));
      for (const d of disks) {
        if (d.datastore && !mounted.has(d.datastore.value)) {
          const name =
            this.o.inventory.datastores.find((x) => x.ref.value === d.datastore!.value)?.name ?? d.datastore.value;
          throw new CofferError(
            'VSPHERE_TRANSPORT',
            `hot-add: datastore ${name} (disk ${d.fileName}) is not mounted on the proxy's host`,
            { hint: 'put the proxy VM on a host of the cluster that has the datastore' },
          );
        }
      }
    }
    const cfg = proxy.config;
    const scsi = cfg?.controllers.filter((c) => /SCSI|Sas|Logic/i.test(c.type)) ?? [];
    if (scsi.length === 0)
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: the proxy VM ${proxy.name} has no SCSI controller to attach disks to`,
        { hint: 'add a paravirtual SCSI controller to the proxy VM' },
      );
    const free = scsi.reduce((n, c) => n + 15 - cfg!.disks.filter((d) => d.controllerKey === c.key).length, 0);
    if (free < disks.length)
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `hot-add: the proxy VM ${proxy.name} has ${free} free SCSI slots, ${disks.length} disks need one each`,
        { hint: 'add a SCSI controller to the proxy VM' },
      );
  }

  async open(disk: VmDisk, _index: number, _ctx: unknown, op: Op = {}): Promise<DiskWriter> {
    const proxy = await this.findProxy();
    const client = this.o.client;
    const before = parseConfigInfo(need((await retrieveOne(client, proxy.ref, ['config'], op)).props.get('config')));
    const scsi = before.controllers.filter((c) => /SCSI|Sas|Logic/i.test(c.type));
    let slot: { key: number; unit: number } | undefined;
    for (const c of scsi) {
      const used = new Set(before.disks.filter((d) => d.controllerKey === c.key).map((d) => d.unitNumber));
      for (let u = 0; u < 16 && !slot; u++) if (u !== 7 && !used.has(u)) slot = { key: c.key, unit: u };
      if (slot) break;
    }
    if (!slot) throw new CofferError('VSPHERE_TRANSPORT', `hot-add: no free SCSI slot on the proxy VM ${proxy.name}`);
    const backingType = disk.backingType || 'VirtualDiskFlatVer2BackingInfo';
    const backing: Record<string, unknown> = {
      _type: backingType,
      fileName: disk.fileName,
      datastore: disk.datastore,
      diskMode: this.o.writable ? 'persistent' : 'independent_nonpersistent',
    };
    if (backingType === 'VirtualDiskRawDiskMappingVer1BackingInfo')
      backing['compatibilityMode'] = disk.compatibilityMode ?? 'virtualMode';
    const device = {
      _type: 'VirtualDisk',
      key: -100,
      backing,
      controllerKey: slot.key,
      unitNumber: slot.unit,
      capacityInKB: Math.ceil(disk.capacityBytes / 1024),
    } as never;
    const what = `attaching ${disk.fileName} to the proxy VM ${proxy.name}`;
    // the record first: a process killed right after the attach still leaves a trace for the next run
    const record: AttachRecord = {
      host: hostname(),
      pid: process.pid,
      proxy: proxy.name,
      fileName: disk.fileName,
      at: new Date().toISOString(),
    };
    await mkdir(this.stateDir(), { recursive: true, mode: 0o700 });
    await writeFile(this.recordPath(disk.fileName), JSON.stringify(record));
    await runTask(
      client,
      'ReconfigVM_Task',
      proxy.ref,
      { spec: { _type: 'VirtualMachineConfigSpec', deviceChange: [{ operation: 'add', device }] } },
      what,
      { timeoutMs: 10 * 60_000 },
    ).catch(async (e: unknown) => {
      await rm(this.recordPath(disk.fileName), { force: true });
      throw e;
    });
    const detach = async () => {
      try {
        await this.detachDevice(proxy, disk.fileName);
        await rm(this.recordPath(disk.fileName), { force: true });
      } catch (e) {
        this.logger.warn(
          `hot-add: detaching ${disk.fileName} from ${proxy.name} failed: ${(e as Error).message}; the next hot-add ` +
            `backup detaches it`,
        );
      }
    };
    try {
      const after = parseConfigInfo(need((await retrieveOne(client, proxy.ref, ['config'], op)).props.get('config')));
      const uuid = after.disks.find((d) => d.fileName === disk.fileName)?.uuid ?? disk.uuid;
      if (!uuid)
        throw new CofferError(
          'VSPHERE_TRANSPORT',
          `hot-add: vCenter reports no UUID for ${disk.fileName}; cannot find it in the guest`,
        );
      const dev = join(this.o.byIdDir ?? '/dev/disk/by-id', wwnName(uuid));
      const deadline = Date.now() + (this.o.appearTimeoutMs ?? 60_000);
      for (;;) {
        op.signal?.throwIfAborted();
        if (
          await stat(dev).then(
            () => true,
            () => false,
          )
        )
          break;
        if (Date.now() > deadline) {
          throw new CofferError(
            'VSPHERE_TRANSPORT',
            `hot-add: ${disk.fileName} was attached to ${proxy.name} but ${dev} did not appear ` +
              `within ${Math.round((this.o.appearTimeoutMs ?? 60_000) / 1000)} s`,
            {
              hint:
                'set disk.EnableUUID=TRUE on the proxy VM (its guest then names disks by ' +
                'UUID), and check that udev runs',
            },
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const size = await deviceBytes(dev);
      if (size < disk.capacityBytes)
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `hot-add: ${dev} has ${size} bytes, disk ${disk.fileName} has ${disk.capacityBytes}; refusing to back up ` +
            `bytes that were not read`,
        );
      const fh: FileHandle = await openFile(dev, this.o.writable ? 'r+' : 'r');
      let closed = false;
      return {
        description: `hotadd:${proxy.name}:${dev}`,
        read: async (offset, length, into) => {
          let done = 0;
          while (done < length) {
            const { bytesRead } = await fh.read(into, done, length - done, offset + done);
            if (bytesRead === 0)
              throw new CofferError(
                'VSPHERE_DISK_LAYOUT',
                `hot-add: ${dev} ended at ${offset + done} (disk ${disk.capacityBytes} bytes)`,
              );
            done += bytesRead;
          }
        },
        write: async (offset, data) => {
          if (!this.o.writable) throw new CofferError('INTERNAL', `hot-add: ${dev} was opened read-only`);
          if (offset < 0 || offset + data.length > disk.capacityBytes)
            throw new CofferError('INTERNAL', `hot-add: write at ${offset} +${data.length} outside ${disk.fileName}`);
          let done = 0;
          while (done < data.length) {
            const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
            done += bytesWritten;
          }
        },
        close: async () => {
          if (closed) return;
          closed = true;
          try {
            // written data must reach the disk before it is detached: a failed flush fails the restore
            if (this.o.writable) await fh.sync();
          } finally {
            await fh.close().catch(() => undefined);
            await detach();
          }
        },
      };
    } catch (e) {
      await detach();
      throw e;
    }
  }
}

/** Size of a block device (sysfs) or a file (tests: the launcher links a regular file). */
async function deviceBytes(dev: string): Promise<number> {
  const st = await stat(dev);
  if (st.isBlockDevice()) {
    const name = basename(await realpath(dev));
    return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
  }
  return st.size;
}

function need(v: XmlNode | undefined): XmlNode {
  if (!v)
    throw new CofferError('VSPHERE_FAULT', 'vCenter sent no configuration for the proxy VM', {
      details: { protocol: true },
    });
  return v;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
