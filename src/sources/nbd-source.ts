import { NbdClient, STATE_DIRTY, STATE_ZERO, type NbdAddress } from '../nbd/index.js';
import { CofferError, type Logger, type Op, silentLogger } from '../shared/index.js';
import type { BlockSource, ChangeTracking, Extent } from './block-source.js';

export interface NbdSourceOptions {
  exportName: string;
  /** QEMU dirty bitmap holding every write since the previous restore point. */
  bitmap?: string | undefined;
  timeoutMs?: number;
  /** Reconnect attempts after a dropped connection or timeout, per read (default 3). */
  retries?: number;
  logger?: Logger;
  /** Shown instead of the address (e.g. the image file served by a qemu-nbd we started). */
  uri?: string;
  /** NBD over TLS (STARTTLS); the server certificate is verified (against `ca` when given, else the system CAs). */
  tls?: { ca?: Buffer } | undefined;
}

/**
 * A disk served over NBD (qemu-nbd, nbdkit, qemu-storage-daemon, VDDK-based servers). Uses base:allocation to skip
 * zero ranges and qemu:dirty-bitmap:NAME for change tracking. A dropped connection or a timeout is retried with a new
 * connection (the export is read-only from our side, so reissuing a read is safe); protocol violations are not.
 */
export class NbdSource implements BlockSource {
  readonly uri: string;
  readonly changeTracking: ChangeTracking | undefined;
  private client: NbdClient;
  private reconnecting: Promise<NbdClient> | undefined;

  private constructor(
    private readonly address: NbdAddress,
    private readonly opts: NbdSourceOptions,
    client: NbdClient,
  ) {
    this.client = client;
    this.uri = opts.uri ?? describe(address, opts.exportName, opts.bitmap, Boolean(opts.tls));
    const bitmap = opts.bitmap;
    this.changeTracking = bitmap
      ? {
          token: `qemu-dirty-bitmap:${bitmap}`,
          changedExtents: (op?: Op) => this.extents(`qemu:dirty-bitmap:${bitmap}`, (f) => (f & STATE_DIRTY) !== 0, op),
        }
      : undefined;
  }

  get sizeBytes(): number {
    return this.client.sizeBytes;
  }

  static async open(address: NbdAddress, opts: NbdSourceOptions, op?: Op): Promise<NbdSource> {
    const client = await NbdSource.connect(address, opts, op);
    return new NbdSource(address, opts, client);
  }

  private static connect(address: NbdAddress, opts: NbdSourceOptions, op?: Op): Promise<NbdClient> {
    const metaContexts = ['base:allocation', ...(opts.bitmap ? [`qemu:dirty-bitmap:${opts.bitmap}`] : [])];
    return NbdClient.connect(address, {
      exportName: opts.exportName,
      metaContexts,
      timeoutMs: opts.timeoutMs ?? 30_000,
      signal: op?.signal,
      tls: opts.tls ? { rejectUnauthorized: true, ...(opts.tls.ca ? { ca: opts.tls.ca } : {}) } : null,
    });
  }

  async read(offset: number, length: number, into: Buffer, op?: Op): Promise<void> {
    await this.withRetry((c) => c.read(offset, length, into, op), op);
  }

  dataExtents(op?: Op): AsyncIterable<Extent> {
    return this.extents('base:allocation', (f) => (f & STATE_ZERO) === 0, op);
  }

  private async *extents(context: string, keep: (flags: number) => boolean, op?: Op): AsyncIterable<Extent> {
    let offset = 0;
    let run: Extent | undefined;
    while (offset < this.sizeBytes) {
      const list = await this.withRetry(
        (c) => c.blockStatus(context, offset, Math.min(1 << 30, this.sizeBytes - offset), op),
        op,
      );
      for (const e of list) {
        const length = Math.min(e.length, this.sizeBytes - e.offset);
        if (length <= 0) continue;
        if (!keep(e.flags)) continue;
        if (run && run.offset + run.length === e.offset) run.length += length;
        else {
          if (run) yield run;
          run = { offset: e.offset, length };
        }
      }
      const last = list[list.length - 1]!;
      offset = Math.min(this.sizeBytes, last.offset + last.length);
    }
    if (run) yield run;
  }

  /**
   * Runs fn on the current connection; on a retryable failure (dropped connection, timeout, refused reconnect)
   * reconnects with backoff, up to `retries` attempts. Once a call has used up its attempts the source is failed for
   * good: later calls fail at once instead of each waiting through its own retries.
   */
  private async withRetry<T>(fn: (c: NbdClient) => Promise<T>, op?: Op): Promise<T> {
    if (this.failure) throw this.failure;
    const retries = this.opts.retries ?? 3;
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        op?.signal?.throwIfAborted();
        if (this.failure) throw this.failure;
        (this.opts.logger ?? silentLogger).warn(
          `${this.uri}: ${(lastError as Error).message}; reconnecting (attempt ${attempt} of ${retries})`,
        );
        // 0.5, 1, 2 s: a restarting server gets 3.5 s
        await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
        try {
          await this.reconnect(this.client, op);
        } catch (e) {
          if (!isRetryable(e)) throw this.fail(e);
          lastError = e;
          continue;
        }
      }
      try {
        return await fn(this.client);
      } catch (e) {
        if (!isRetryable(e) || op?.signal?.aborted) throw e;
        lastError = e;
      }
    }
    throw this.fail(lastError);
  }

  private failure: CofferError | undefined;

  private fail(e: unknown): CofferError {
    const err = e instanceof CofferError ? e : new CofferError('SOURCE_UNREADABLE', String(e));
    this.failure ??= new CofferError(
      err.code,
      `${err.message} (gave up after ${this.opts.retries ?? 3} reconnection attempts)`,
      { details: err.details, cause: err },
    );
    return this.failure;
  }

  private async reconnect(failed: NbdClient, op?: Op): Promise<void> {
    if (this.client !== failed) return; // another read already reconnected
    this.reconnecting ??= NbdSource.connect(this.address, this.opts, op).finally(() => (this.reconnecting = undefined));
    const fresh = await this.reconnecting;
    if (fresh.sizeBytes !== failed.sizeBytes) {
      await fresh.close();
      throw new CofferError(
        'SOURCE_UNREADABLE',
        `${this.uri}: the export changed size from ${failed.sizeBytes} to ${fresh.sizeBytes} while reconnecting`,
      );
    }
    if (this.client === failed) {
      this.client = fresh;
      await failed.close().catch(() => undefined);
    } else if (this.client !== fresh) {
      await fresh.close(); // someone else installed another connection meanwhile
    }
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

function isRetryable(e: unknown): boolean {
  return e instanceof CofferError && e.details.retryable === true;
}

function describe(address: NbdAddress, exportName: string, bitmap: string | undefined, tls: boolean): string {
  const s = tls ? 's' : '';
  const q = bitmap ? `?bitmap=${encodeURIComponent(bitmap)}` : ''; // (never the TLS or credential parameters)
  if ('path' in address)
    return (
      `nbd${s}+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(address.path)}` +
      `${bitmap ? `&bitmap=${encodeURIComponent(bitmap)}` : ''}`
    );
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `nbd${s}://${host}:${address.port}/${encodeURIComponent(exportName)}${q}`;
}

/** Parses nbd://HOST[:PORT]/[EXPORT][?bitmap=NAME] and nbd+unix:///[EXPORT]?socket=PATH[&bitmap=NAME]. */
export function parseNbdUri(spec: string): {
  address: NbdAddress;
  exportName: string;
  bitmap: string | undefined;
  tls: boolean;
  tlsCa: string | undefined;
} {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new CofferError('USAGE', `invalid NBD URI ${spec}`);
  }
  const exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const bitmap = url.searchParams.get('bitmap') ?? undefined;
  if (bitmap !== undefined && !/^[\x21-\x7e]{1,1023}$/.test(bitmap))
    throw new CofferError('USAGE', `invalid bitmap name ${JSON.stringify(bitmap)}`);
  if (url.protocol === 'nbd+unix:' || url.protocol === 'nbds+unix:') {
    const path = url.searchParams.get('socket');
    if (!path) throw new CofferError('USAGE', `${spec}: nbd+unix needs ?socket=PATH`);
    return {
      address: { path },
      exportName,
      bitmap,
      tls: url.protocol === 'nbds+unix:',
      tlsCa: url.searchParams.get('tls-ca') ?? undefined,
    };
  }
  if (url.protocol !== 'nbd:' && url.protocol !== 'nbds:') throw new CofferError('USAGE', `not an NBD URI: ${spec}`);
  const port = url.port === '' ? 10809 : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new CofferError('USAGE', `${spec}: missing host`);
  return {
    address: { host, port },
    exportName,
    bitmap,
    tls: url.protocol === 'nbds:',
    tlsCa: url.searchParams.get('tls-ca') ?? undefined,
  };
}
