import type { Readable } from 'node:stream';
import { NbdSource, parseNbdUri } from '../sources/index.js';
import { CofferError, silentLogger, sleep, type Logger, type Op } from '../shared/index.js';
import type { HttpsClient } from './https-client.js';
import { parseVmdkDescriptor, resolveExtent, sniffVmdk } from './vmdk-descriptor.js';
import { parseDatastorePath, type VmDisk } from './vm-model.js';
import type { MoRef } from './xml.js';

/** Random-access reads of one disk of a snapshot. */
export interface DiskReader {
  readonly description: string;
  read(offset: number, length: number, into: Buffer, op?: Op): Promise<void>;
  close(): Promise<void>;
}

/** Where the bytes of a snapshot's disks come from (DESIGN.md §vSphere, transports). */
export interface DiskTransport {
  readonly name: string;
  /** Called once the backup's snapshot exists, before the first open() (VDDK needs the morefs). */
  prepare?(vm: MoRef, snapshot: MoRef): void;
  open(disk: VmDisk, index: number, ctx: { datacenter: string; vmName: string }, op?: Op): Promise<DiskReader>;
}

// ---- datastore HTTP file access ------------------------------------------------------------------------------------

export interface HttpTransportOptions {
  http: HttpsClient;
  /** The current session cookie (a real vCenter checks it on /folder; it changes after a re-login). */
  cookie: () => string | undefined;
  logger?: Logger;
  /** Attempts per range after a transient failure (default 3; 0.5, 1, 2 s apart). */
  retries?: number;
  /** Reads of at least 2 x this are split into parallel ranges of this size (default 256 KiB, at most 4 at once). */
  rangeBytes?: number;
}

export interface FileExtent {
  /** datastore-relative path of the file holding these bytes */
  path: string;
  /** disk offset where this extent starts */
  start: number;
  length: number;
  /** bytes in the file (at least `length` for reads: a shorter file is refused, never padded with zeros) */
  fileBytes: number;
}

/** The /folder URL of a datastore file. */
export function folderUrl(datacenter: string, datastore: string, path: string): string {
  const p = path.split('/').map(encodeURIComponent).join('/');
  return `/folder/${p}?dcPath=${encodeURIComponent(datacenter)}&dsName=${encodeURIComponent(datastore)}`;
}

/**
 * Reads disks through vCenter's datastore file access (https://HOST/folder/PATH?dcPath=DC&dsName=DS) with Range
 * requests. The disk's .vmdk must be a text descriptor, followed to its FLAT/VMFS extents (-flat.vmdk); vSAN objects,
 * RDMs, sparse and delta VMDKs are refused with VSPHERE_TRANSPORT (hot-add or VDDK read them), anything else with
 * VSPHERE_DISK_LAYOUT.
 */
export class HttpDatastoreTransport implements DiskTransport {
  readonly name = 'http';
  constructor(private readonly o: HttpTransportOptions) {}

  async open(disk: VmDisk, _index: number, ctx: { datacenter: string }, op: Op = {}): Promise<DiskReader> {
    const { datastore } = parseDatastorePath(disk.fileName);
    const extents = await this.resolve(disk, ctx.datacenter, op);
    return new HttpDiskReader(
      this,
      ctx.datacenter,
      datastore,
      extents,
      `https://${this.o.http.host}:${this.o.http.port}/folder/${extents[0]!.path}`,
    );
  }

  /**
   * The datastore files holding the disk's bytes, in disk order: the .vmdk must be a text descriptor (FLAT/VMFS
   * extents resolved as ESXi does, vmdk-descriptor.ts). Anything else is an error, never read as if it were the disk:
   * a sparse header (KDMV/COWD), an unrecognised file, a delta, a vSAN object or RDM (not files /folder serves), a
   * missing extent, and (for reads) an extent file shorter than its part of the disk.
   */
  async resolve(
    disk: Pick<VmDisk, 'fileName' | 'capacityBytes'>,
    datacenter: string,
    op: Op = {},
    forRead = true,
  ): Promise<FileExtent[]> {
    const { datastore, path } = parseDatastorePath(disk.fileName);
    const head = await this.get(datacenter, datastore, path, 0, 65535, op, true);
    const kind = sniffVmdk(head.body);
    if (kind === 'sparse' || kind === 'cowd') {
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `${disk.fileName} is a sparse VMDK: the HTTP transport reads flat disks only`,
        { hint: 'use --transport hotadd (on a proxy VM) or --transport nbd (VDDK)' },
      );
    }
    if (kind !== 'descriptor') {
      throw new CofferError(
        'VSPHERE_DISK_LAYOUT',
        `${disk.fileName} is neither a VMDK descriptor nor a known sparse header (${head.total} bytes); refusing to ` +
          `back it up as a disk`,
        { details: { file: disk.fileName, bytes: head.total } },
      );
    }
    return this.descriptorExtents(head.body.toString('latin1'), disk, datacenter, datastore, path, op, forRead);
  }

  /**
   * Writes a whole disk (PUT /folder, streamed, Content-Length = size) into the one FLAT/VMFS extent named by the
   * disk's descriptor, after resolve() verified it (same datastore, flat, not vSAN/RDM/sparse/delta). Anything else is
   * VSPHERE_UNSAFE_WRITE: never a disk image written over a `.vmdk` path Coffer has not resolved (a missing descriptor
   * used to be "a new file" and got the raw image, destroying the VM's descriptor on an in-place restore).
   */
  async upload(
    disk: Pick<VmDisk, 'fileName' | 'capacityBytes'>,
    datacenter: string,
    body: Readable,
    op: Op = {},
  ): Promise<string> {
    const refuse = (why: string, cause?: unknown) =>
      new CofferError('VSPHERE_UNSAFE_WRITE', `refusing to write ${disk.fileName} through /folder: ${why}`, {
        hint:
          'restore in place with --quick (writes through hot-add or VDDK, vSAN included), restore as a new VM (NFC ' +
          'import), or repair the disk descriptor in vCenter first',
        details: { file: disk.fileName },
        cause,
      });
    let extents: FileExtent[];
    try {
      extents = await this.resolve(disk, datacenter, op, false);
    } catch (e) {
      if (e instanceof CofferError && (e.code === 'VSPHERE_AUTH' || e.code === 'CANCELLED' || e.details.retryable))
        throw e;
      throw refuse(e instanceof Error ? e.message : String(e), e);
    }
    if (extents.length !== 1) throw refuse(`it has ${extents.length} extents; uploads need a single flat extent`);
    const ext = extents[0]!;
    if (ext.path === parseDatastorePath(disk.fileName).path) throw refuse('its extent is the descriptor file itself');
    const { datastore } = parseDatastorePath(disk.fileName);
    await this.put(datacenter, datastore, ext.path, body, disk.capacityBytes, op);
    return ext.path;
  }

  async put(dc: string, ds: string, path: string, body: Readable, sizeBytes: number, op: Op = {}): Promise<void> {
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': sizeBytes,
    };
    const cookie = this.o.cookie();
    if (cookie) headers['Cookie'] = cookie;
    const reply = await this.o.http.request({
      method: 'PUT',
      path: folderUrl(dc, ds, path),
      headers,
      body,
      signal: op.signal,
      timeoutMs: 600_000,
      maxBytes: 1 << 20,
    });
    if (reply.status === 401 || reply.status === 403)
      throw new CofferError('VSPHERE_AUTH', `vCenter refused the upload to [${ds}] ${path} (HTTP ${reply.status})`);
    if (reply.status !== 200 && reply.status !== 201 && reply.status !== 204) {
      throw new CofferError(
        'TARGET_UNWRITABLE',
        `uploading [${ds}] ${path} failed: HTTP ${reply.status} ${reply.body.subarray(0, 200).toString('utf8').trim()}`,
      );
    }
  }

  /** Whether a datastore file exists. */
  async exists(dc: string, ds: string, path: string, op: Op = {}): Promise<boolean> {
    try {
      await this.get(dc, ds, path, 0, 0, op, true);
      return true;
    } catch (e) {
      if (e instanceof CofferError && e.code === 'SOURCE_UNREADABLE' && /HTTP 404/.test(e.message)) return false;
      throw e;
    }
  }

  private async descriptorExtents(
    text: string,
    disk: Pick<VmDisk, 'fileName' | 'capacityBytes'>,
    dc: string,
    datastore: string,
    path: string,
    op: Op,
    forRead: boolean,
  ): Promise<FileExtent[]> {
    const d = parseVmdkDescriptor(text, disk.fileName);
    if ((d.parentCID && d.parentCID.toLowerCase() !== 'ffffffff') || d.parentFileNameHint) {
      throw new CofferError(
        'VSPHERE_TRANSPORT',
        `${disk.fileName} is a delta disk (the VM has other snapshots): the HTTP transport reads flat base disks only`,
        { hint: 'remove the other snapshots of the VM, or use --transport hotadd or nbd' },
      );
    }
    const out: FileExtent[] = [];
    let start = 0;
    for (const e of d.extents) {
      const where = resolveExtent(e.file, { datastore, path });
      if (where.kind === 'vsan-object') {
        throw new CofferError(
          'VSPHERE_TRANSPORT',
          `${disk.fileName} is on vSAN (extent ${e.file}): vCenter's /folder access cannot read vSAN objects`,
          {
            hint: 'use --transport hotadd (Coffer on a proxy VM in the cluster) or --transport nbd (VDDK)',
            details: { file: disk.fileName, extent: e.file },
          },
        );
      }
      if (e.type === 'VMFSRDM' || e.type === 'VMFSRAW' || where.kind === 'device') {
        throw new CofferError(
          'VSPHERE_TRANSPORT',
          `${disk.fileName} is a raw device mapping (${e.type}): not readable over /folder`,
          { hint: 'use --transport hotadd or nbd' },
        );
      }
      if (e.type !== 'FLAT' && e.type !== 'VMFS')
        throw new CofferError(
          'VSPHERE_TRANSPORT',
          `${disk.fileName}: extent type ${e.type} is not readable over HTTP`,
          { hint: 'use --transport hotadd or nbd' },
        );
      if (e.offsetSectors !== 0)
        throw new CofferError('VSPHERE_DISK_LAYOUT', `${disk.fileName}: extents with an offset are not supported`);
      if (where.datastore !== datastore)
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `${disk.fileName}: extent ${e.file} is on another datastore (${where.datastore})`,
        );
      let probe: { total: number };
      try {
        probe = await this.get(dc, where.datastore, where.path, 0, 0, op, true);
      } catch (err) {
        if (err instanceof CofferError && /HTTP 404/.test(err.message)) {
          throw new CofferError(
            'VSPHERE_DISK_LAYOUT',
            `${disk.fileName}: its extent ${e.file} ([${where.datastore}] ${where.path}) cannot be found`,
            { details: { file: disk.fileName, extent: e.file }, cause: err },
          );
        }
        throw err;
      }
      const length = e.sectors * 512;
      if (forRead && probe.total < length) {
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `${disk.fileName}: extent ${e.file} has ${probe.total} bytes, the descriptor says ${length}; refusing to ` +
            `back up bytes that were not read`,
          { details: { file: disk.fileName, extent: e.file, fileBytes: probe.total, extentBytes: length } },
        );
      }
      out.push({ path: where.path, start, length, fileBytes: probe.total });
      start += length;
    }
    if (start < disk.capacityBytes)
      throw new CofferError(
        'VSPHERE_DISK_LAYOUT',
        `${disk.fileName}: the extents cover ${start} bytes of a ${disk.capacityBytes}-byte disk`,
      );
    return out;
  }

  /** One ranged GET with retries; `probe` accepts a short or empty file (416) and reports the file size. */
  async get(
    dc: string,
    ds: string,
    path: string,
    first: number,
    last: number,
    op: Op,
    probe = false,
  ): Promise<{ body: Buffer; total: number }> {
    const retries = this.o.retries ?? 3;
    let lastError: CofferError | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        (this.o.logger ?? silentLogger).warn(
          `${path}: ${lastError!.message}; retrying (attempt ${attempt} of ${retries})`,
        );
        await sleep(500 * 2 ** (attempt - 1), { signal: op.signal });
      }
      const headers: Record<string, string> = { Range: `bytes=${first}-${last}` };
      const cookie = this.o.cookie();
      if (cookie) headers['Cookie'] = cookie;
      let reply;
      try {
        reply = await this.o.http.request({
          method: 'GET',
          path: folderUrl(dc, ds, path),
          headers,
          signal: op.signal,
          timeoutMs: 120_000,
          maxBytes: Math.max(last - first + 2, 65536),
        });
      } catch (e) {
        if (e instanceof CofferError && e.details.retryable === true && !op.signal?.aborted) {
          lastError = e;
          continue;
        }
        throw e;
      }
      const total = Number(/\/(\d+)\s*$/.exec(String(reply.headers['content-range'] ?? ''))?.[1] ?? NaN);
      if (reply.status === 206) {
        if (reply.body.length !== Math.min(last, (Number.isFinite(total) ? total : Infinity) - 1) - first + 1) {
          throw new CofferError(
            'SOURCE_UNREADABLE',
            `${path}: asked for bytes ${first}-${last}, got ${reply.body.length}`,
            { details: { protocol: true } },
          );
        }
        return { body: reply.body, total: Number.isFinite(total) ? total : first + reply.body.length };
      }
      if (reply.status === 416 && probe) return { body: Buffer.alloc(0), total: Number.isFinite(total) ? total : 0 };
      if (reply.status === 416) return { body: Buffer.alloc(0), total: Number.isFinite(total) ? total : 0 };
      if (reply.status === 200 && first === 0 && reply.body.length <= last + 1)
        return { body: reply.body, total: reply.body.length };
      if (reply.status === 401 || reply.status === 403)
        throw new CofferError('VSPHERE_AUTH', `vCenter refused datastore access to ${path} (HTTP ${reply.status})`);
      if (reply.status === 404)
        throw new CofferError('SOURCE_UNREADABLE', `the disk file ${path} is not on datastore ${ds} (HTTP 404)`);
      lastError = new CofferError('SOURCE_UNREADABLE', `GET ${path} bytes ${first}-${last}: HTTP ${reply.status}`, {
        details: { status: reply.status },
      });
      if (reply.status < 500) throw lastError;
    }
    throw new CofferError(lastError!.code, `${lastError!.message} (gave up after ${retries} retries)`, {
      details: lastError!.details,
      cause: lastError,
    });
  }

  get rangeBytes(): number {
    return this.o.rangeBytes ?? 256 * 1024;
  }
}

class HttpDiskReader implements DiskReader {
  constructor(
    private readonly t: HttpDatastoreTransport,
    private readonly dc: string,
    private readonly ds: string,
    private readonly extents: FileExtent[],
    readonly description: string,
  ) {}

  async read(offset: number, length: number, into: Buffer, op: Op = {}): Promise<void> {
    const parts: { off: number; len: number }[] = [];
    const step = this.t.rangeBytes;
    if (length >= 2 * step)
      for (let o = 0; o < length; o += step) parts.push({ off: offset + o, len: Math.min(step, length - o) });
    else parts.push({ off: offset, len: length });
    // at most 4 ranges in flight
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const p = parts[next++]!;
        await this.readRange(p.off, p.len, into.subarray(p.off - offset, p.off - offset + p.len), op);
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, parts.length) }, worker));
  }

  private async readRange(offset: number, length: number, into: Buffer, op: Op): Promise<void> {
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const ext = this.extents.find((e) => pos >= e.start && pos < e.start + e.length);
      if (!ext) throw new CofferError('SOURCE_UNREADABLE', `read at ${pos} is outside the disk`);
      const inExt = Math.min(length - done, ext.start + ext.length - pos);
      const fileOff = pos - ext.start;
      // never zeros for bytes that were not read: a file that ended early fails the backup
      if (fileOff + inExt > ext.fileBytes)
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `${ext.path}: the file has ${ext.fileBytes} bytes, the disk needs ${fileOff + inExt}`,
        );
      const { body } = await this.t.get(this.dc, this.ds, ext.path, fileOff, fileOff + inExt - 1, op);
      if (body.length !== inExt)
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `${ext.path}: short read at ${fileOff} (${body.length} of ${inExt} bytes); did the file shrink?`,
        );
      body.copy(into, done);
      done += inExt;
    }
  }

  async close(): Promise<void> {}
}

// ---- NBD (VDDK / nbdkit exports)
// -------------------------------------------------------------------------------------

/**
 * Reads each disk from an NBD export, e.g. nbdkit's vddk plugin or a VDDK-based server exporting the snapshot's disks.
 * The URL template may use {index} (0-based disk order), {key} (device key), {file} (datastore path, URL-encoded) and
 * {name} (the file's base name) and {flat} (its flat extent's name by VMware's convention, `disk1-flat.vmdk`, e.g. for
 * `nbdkit file dir=VMDIR`).
 */
export class NbdDiskTransport implements DiskTransport {
  readonly name = 'nbd';
  constructor(
    private readonly template: string,
    private readonly logger?: Logger,
  ) {}

  async open(disk: VmDisk, index: number, _ctx: unknown, op: Op = {}): Promise<DiskReader> {
    const spec = this.template
      .replace(/\{index\}/g, String(index))
      .replace(/\{key\}/g, String(disk.key))
      .replace(/\{file\}/g, encodeURIComponent(disk.fileName))
      .replace(/\{name\}/g, encodeURIComponent(disk.fileName.replace(/^.*[/\]]\s*/, '')))
      .replace(
        /\{flat\}/g,
        encodeURIComponent(disk.fileName.replace(/^.*[/\]]\s*/, '').replace(/\.vmdk$/i, '-flat.vmdk')),
      );
    const u = parseNbdUri(spec);
    if (u.tls) throw new CofferError('USAGE', 'nbds:// is not supported as a vSphere transport yet');
    const src = await NbdSource.open(u.address, { exportName: u.exportName, logger: this.logger }, op);
    if (src.sizeBytes !== disk.capacityBytes) {
      await src.close();
      throw new CofferError(
        'SOURCE_UNREADABLE',
        `NBD export ${spec} has ${src.sizeBytes} bytes but disk ${disk.key} (${disk.fileName}) ` +
          `has ${disk.capacityBytes}`,
      );
    }
    return { description: src.uri, read: (o, l, into, op2) => src.read(o, l, into, op2), close: () => src.close() };
  }
}
