import { Readable } from 'node:stream';
import { CofferError, sleep, type Logger, type Op } from '../../shared/index.js';
import { HttpsClient } from '../https-client.js';
import { retrieveOne } from '../property-collector.js';
import { returnval, type VimClient } from '../vim-client.js';
import { MoRef, boolOf, child, children, textOf, type SoapObject, type XmlNode } from '../xml.js';

/** One file of an NFC lease (HttpNfcLeaseDeviceUrl). */
export interface NfcDeviceUrl {
  key: string;
  importKey: string;
  url: string;
  targetId: string;
  disk: boolean;
  sslThumbprint: string;
}

export interface NfcImportRequest {
  pool: MoRef;
  folder?: MoRef | undefined;
  host?: MoRef | undefined;
  /** a VirtualMachineConfigSpec (disks with fileOperation create) */
  configSpec: SoapObject;
}

const nfcError = (message: string, details: Record<string, unknown> = {}, cause?: unknown) =>
  new CofferError('VSPHERE_NFC', message, { details, cause });

function parseDeviceUrl(n: XmlNode): NfcDeviceUrl {
  return {
    key: textOf(n, 'key')?.trim() ?? '',
    importKey: textOf(n, 'importKey')?.trim() ?? '',
    url: textOf(n, 'url')?.trim() ?? '',
    targetId: textOf(n, 'targetId')?.trim() ?? '',
    disk: boolOf(n, 'disk') ?? false,
    sslThumbprint: textOf(n, 'sslThumbprint')?.trim() ?? '',
  };
}

/**
 * An import through ImportVApp + HttpNfcLease (DESIGN.md §vSphere, NFC import): the VM exists (the lease's entity)
 * once the lease is ready; each disk is POSTed as a streamOptimized VMDK to its device URL; progress keeps the lease
 * alive; complete() makes the VM usable, abort() ends the lease (the caller deletes the VM).
 */
export class NfcImport {
  private percent = 0;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failed: CofferError | undefined;
  private ended = false;
  private hosts = new Map<string, HttpsClient>();

  private constructor(
    private readonly client: VimClient,
    readonly lease: MoRef,
    readonly vm: MoRef,
    readonly deviceUrls: NfcDeviceUrl[],
    private readonly logger: Logger | undefined,
    keepAliveMs: number,
  ) {
    this.timer = setInterval(() => this.progress(this.percent, true), keepAliveMs);
    this.timer.unref();
  }

  /** ImportVApp, then waits for the lease to become ready (state error: VSPHERE_NFC with vCenter's message). */
  static async start(
    client: VimClient,
    req: NfcImportRequest,
    opts: Op & { logger?: Logger | undefined; keepAliveMs?: number; readyTimeoutMs?: number } = {},
  ): Promise<NfcImport> {
    const spec: SoapObject = { _type: 'VirtualMachineImportSpec', configSpec: req.configSpec };
    let res: XmlNode;
    try {
      res = await client.invoke('ImportVApp', req.pool, { spec, folder: req.folder, host: req.host }, opts);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'VSPHERE_FAULT')
        throw nfcError(`ImportVApp refused: ${e.message}`, { fault: e.details.fault }, e);
      throw e;
    }
    const rv = returnval(res);
    if (!rv?.attrs['type'])
      throw new CofferError('VSPHERE_FAULT', 'ImportVApp returned no lease', { details: { protocol: true } });
    const lease = MoRef.from(rv);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 10 * 60_000);
    let delay = 100;
    for (;;) {
      const o = await retrieveOne(client, lease, ['state', 'error', 'info'], opts);
      const state = o.props.get('state')?.text.trim();
      if (state === 'ready') {
        const info = o.props.get('info');
        const entity = info && child(info, 'entity');
        if (!info || !entity)
          throw nfcError(`lease ${lease.value} is ready but names no VM`, { lease: lease.value, protocol: true });
        const urls = children(info, 'deviceUrl').map(parseDeviceUrl);
        return new NfcImport(client, lease, MoRef.from(entity), urls, opts.logger, opts.keepAliveMs ?? 60_000);
      }
      if (state === 'error' || state === 'done') {
        const err = o.props.get('error');
        const msg = (err && textOf(err, 'localizedMessage')?.trim()) || err?.xsiType || 'no reason given';
        throw nfcError(`the import lease ${lease.value} went to state ${state}: ${msg}`, { lease: lease.value });
      }
      if (Date.now() > deadline) {
        await client.invoke('HttpNfcLeaseAbort', lease, {}, {}).catch(() => undefined);
        throw nfcError(`the import lease ${lease.value} did not become ready`, { lease: lease.value, timeout: true });
      }
      await sleep(delay, { signal: opts.signal });
      delay = Math.min(2000, delay * 1.5);
    }
  }

  /** The device URL of the i-th disk: by the disk file's base name (targetId), else the i-th disk URL. */
  diskUrl(i: number, fileName: string): NfcDeviceUrl {
    const disks = this.deviceUrls.filter((d) => d.disk);
    const base = fileName.replace(/^.*[/\]]\s*/, '');
    const u = disks.find((d) => d.targetId === base) ?? disks[i];
    if (!u) throw nfcError(`the import lease ${this.lease.value} has no device URL for disk ${i} (${fileName})`);
    return u;
  }

  /**
   * Reports progress (HttpNfcLeaseProgress, at most one call in flight; also every keepAliveMs so the lease does not
   * time out). A failure becomes sticky: the next upload chunk and complete() fail with it.
   */
  progress(percent: number, keepAlive = false): void {
    const p = Math.max(0, Math.min(100, Math.floor(percent)));
    if ((p <= this.percent && !keepAlive) || this.ended) return;
    this.percent = p;
    if (this.inFlight) return;
    this.inFlight = this.client
      .invoke('HttpNfcLeaseProgress', this.lease, { percent: p })
      .then(
        () => undefined,
        (e: unknown) => {
          this.failed ??= nfcError(
            `the import lease ${this.lease.value} failed (HttpNfcLeaseProgress): ${(e as Error).message}`,
            { lease: this.lease.value },
            e,
          );
        },
      )
      .finally(() => (this.inFlight = undefined));
  }

  /** Throws the sticky failure, if any. */
  check(): void {
    if (this.failed) throw this.failed;
  }

  /**
   * POSTs one disk (a streamOptimized VMDK, application/x-vnd.vmware-streamVmdk; chunked, its length is not known in
   * advance) to its device URL. Resolves with the bytes sent.
   */
  async upload(url: NfcDeviceUrl, body: AsyncIterable<Buffer>, op: Op = {}): Promise<number> {
    this.check();
    const u = new URL(url.url.replace('://*', `://${this.client.http.host}:${this.client.http.port}`));
    const http = this.httpFor(u, url.sslThumbprint);
    let sent = 0;
    const self = this;
    const counted = Readable.from(
      (async function* () {
        for await (const b of body) {
          self.check();
          sent += b.length;
          yield b;
        }
      })(),
      { objectMode: false },
    );
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/x-vnd.vmware-streamVmdk',
      'Transfer-Encoding': 'chunked',
    };
    const cookie = this.client.sessionCookie;
    if (cookie) headers['Cookie'] = cookie;
    let reply;
    try {
      reply = await http.request({
        method: 'POST',
        path: u.pathname + u.search,
        headers,
        body: counted,
        signal: op.signal,
        timeoutMs: 600_000,
        maxBytes: 1 << 20,
      });
    } catch (e) {
      if (this.failed) throw this.failed;
      if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
      if (e instanceof CofferError && e.code !== 'VSPHERE_FAULT' && e.code !== 'VSPHERE_TLS') throw e;
      throw (
        (await this.leaseFailure(url, sent)) ??
        nfcError(`uploading ${url.targetId || url.key} to the import lease failed: ${(e as Error).message}`, {
          lease: this.lease.value,
          sentBytes: sent,
        })
      );
    }
    if (reply.status !== 200 && reply.status !== 201 && reply.status !== 204)
      throw (
        (await this.leaseFailure(url, sent)) ??
        nfcError(
          `uploading ${url.targetId || url.key}: HTTP ${reply.status} ` +
            reply.body.subarray(0, 200).toString('utf8').trim(),
          { lease: this.lease.value, status: reply.status },
        )
      );
    this.check();
    return sent;
  }

  /**
   * After a failed upload: the lease's own fault when the host put it in state `error` (NoDiskSpace: the target
   * datastore filled up; details.datastoreFull), else undefined. Never throws: the upload's error stands then.
   */
  private async leaseFailure(url: NfcDeviceUrl, sent: number): Promise<CofferError | undefined> {
    try {
      const o = await retrieveOne(this.client, this.lease, ['state', 'error'], {});
      if (o.props.get('state')?.text.trim() !== 'error') return undefined;
      const err = o.props.get('error');
      const fault = err ? child(err, 'fault') : undefined;
      const type = fault?.xsiType ?? 'unknown fault';
      const message = (err && textOf(err, 'localizedMessage')?.trim()) || '';
      const full =
        /NoDiskSpace|OutOfDiskSpace|InsufficientDisk/i.test(type) || /insufficient disk space/i.test(message);
      const why = `${type}${message ? `: ${message}` : ''}`;
      const what = `uploading ${url.targetId || url.key}: the import lease failed (${why})`;
      return new CofferError('VSPHERE_NFC', full ? `the target datastore is full: ${what}` : what, {
        details: { lease: this.lease.value, sentBytes: sent, fault: type, ...(full ? { datastoreFull: true } : {}) },
        ...(full ? { hint: 'free space on the datastore or restore to another one (--datastore)' } : {}),
      });
    } catch {
      return undefined;
    }
  }

  private httpFor(u: URL, thumbprint: string): HttpsClient {
    const c = this.client.http;
    const port = Number(u.port || 443);
    if (u.hostname === c.host && port === c.port) return c;
    // an ESXi host's NFC service: pinned to the thumbprint vCenter gave for it
    const key = `${u.hostname}:${port}`;
    let h = this.hosts.get(key);
    if (!h) {
      h = new HttpsClient(u.hostname, port, thumbprint ? { thumbprint } : c.tlsPolicy);
      this.hosts.set(key, h);
    }
    return h;
  }

  async complete(op: Op = {}): Promise<void> {
    await this.inFlight;
    this.check();
    this.stop();
    try {
      await this.client.invoke('HttpNfcLeaseProgress', this.lease, { percent: 100 }, op);
      await this.client.invoke('HttpNfcLeaseComplete', this.lease, {}, op);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'CANCELLED') throw e;
      throw nfcError(
        `completing the import lease ${this.lease.value} failed: ${(e as Error).message}`,
        { lease: this.lease.value },
        e,
      );
    }
  }

  /** HttpNfcLeaseAbort (best effort: a lease that already ended is fine). */
  async abort(reason: string): Promise<void> {
    this.stop();
    await this.inFlight;
    await this.client
      .invoke('HttpNfcLeaseAbort', this.lease, {
        fault: { _type: 'LocalizedMethodFault', fault: { _type: 'SystemError', reason }, localizedMessage: reason },
      })
      .catch((e: Error) => this.logger?.warn(`aborting the import lease ${this.lease.value}: ${e.message}`));
  }

  private stop(): void {
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const h of this.hosts.values()) h.close();
    this.hosts.clear();
  }
}
