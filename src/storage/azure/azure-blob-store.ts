import { BlobSASPermissions, type ContainerClient } from '@azure/storage-blob';
import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import { isValidBlobName, type BlobInfo, type BlobStore, type ByteRange, type RetentionInfo } from '../blob-store.js';
import { ownCapabilities, type CapableBlobStore, type PutFirst } from '../capabilities.js';
import {
  innermost,
  lockRefusal,
  type AccessTier,
  type LockRequest,
  type LockingBlobStore,
  type RehydratePriority,
  type ServerSideCopy,
  type TierInfo,
  type TieredBlobStore,
} from '../cloud-store.js';
import { abortError, requestSignal } from '../request-signal.js';
import { azureErrorCode, translateAzureError } from './azure-errors.js';

export interface AzureBlobStoreOptions {
  /** blob name prefix inside the container ('' or ending in '/') */
  prefix?: string;
  /** per-request timeout (default 120 s: an 8 MiB chunk at 0.5 Mbit/s still fits) */
  requestTimeoutMs?: number;
  /** names a List Blobs request (default 5000, the service maximum) */
  listPageSize?: number;
  /** what `location` says, e.g. azure://account/container/prefix */
  location: string;
}

/**
 * Blobs in an Azure Blob Storage container (block blobs, one Put Blob each).
 * - put: Put Blob with If-None-Match: * (409 BlobAlreadyExists = 'exists'): atomic, never overwrites.
 * - get: Get Blob with x-ms-range; a range starting past the end (416) is an empty read.
 * - list: List Blobs by prefix, page by page (5000 names a request), lazily.
 * - delete: Delete Blob (+ snapshots); 404 resolves; an immutability policy or legal hold rejects IMMUTABLE.
 * No retries here (the SDK's retry policy is off): RetryingBlobStore retries TRANSIENT, i.e. 408/429/5xx/network.
 */
export class AzureBlobStore implements CapableBlobStore, TieredBlobStore, LockingBlobStore, ServerSideCopy, PutFirst {
  readonly location: string;
  readonly capability = ownCapabilities(this, ['tiers', 'locks', 'serverSideCopy', 'putFirst']);
  readonly putAnswersExists = true;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly pageSize: number;

  constructor(
    readonly container: ContainerClient,
    opts: AzureBlobStoreOptions,
  ) {
    this.prefix = opts.prefix ?? '';
    this.timeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.location = opts.location;
    this.pageSize = opts.listPageSize ?? 5000;
  }

  private key(name: string): string {
    if (!isValidBlobName(name)) throw new CofferError('INTERNAL', `invalid blob name ${JSON.stringify(name)}`);
    return this.prefix + name;
  }

  /** Runs one request with the per-request timeout, translating every failure. */
  private async call<T>(what: string, op: Op | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    op?.signal?.throwIfAborted();
    const rs = requestSignal(op, this.timeoutMs);
    try {
      return await fn(rs.signal);
    } catch (e) {
      if (rs.signal.aborted) throw abortError(op, `${what} at ${this.location}`, this.timeoutMs, e);
      throw translateAzureError(e, this.location, what);
    }
  }

  /** Creates the container if it is missing (init). */
  async ensureContainer(op?: Op): Promise<void> {
    await this.call('create container', op, (abortSignal) => this.container.createIfNotExists({ abortSignal }));
  }

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    const key = this.key(name);
    op?.signal?.throwIfAborted();
    try {
      await this.call(name, op, (abortSignal) =>
        this.container
          .getBlockBlobClient(key)
          .upload(data, data.length, { abortSignal, conditions: { ifNoneMatch: '*' } }),
      );
      return 'created';
    } catch (e) {
      const cause = e instanceof CofferError ? (e.cause ?? e) : e;
      const code = azureErrorCode(cause);
      if (
        code === 'BlobAlreadyExists' ||
        code === 'ConditionNotMet' ||
        (e instanceof CofferError &&
          (e.details.status === 409 || e.details.status === 412) &&
          !/Immutable|Archived|Lease/.test(String(code)))
      ) {
        return 'exists';
      }
      throw e;
    }
  }

  async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    const key = this.key(name);
    if (range && range.length <= 0) {
      if (!(await this.stat(name, op)))
        throw new CofferError('NOT_FOUND', `blob ${name} not found at ${this.location}`, { details: { blob: name } });
      return Buffer.alloc(0);
    }
    try {
      return await this.call(name, op, async (abortSignal) => {
        const res = await this.container
          .getBlobClient(key)
          .download(range?.offset ?? 0, range?.length, { abortSignal, maxRetryRequests: 0 });
        const body = await readAll(res.readableStreamBody, res.contentLength);
        if (res.contentLength !== undefined && body.length !== res.contentLength) {
          throw new CofferError(
            'TRANSIENT',
            `short read of ${name} at ${this.location}: ${body.length} of ${res.contentLength} bytes`,
          );
        }
        return body;
      });
    } catch (e) {
      // InvalidRange: the range starts at or past the end of the blob (the blob exists): a short, empty read
      if (range && e instanceof CofferError && e.details.status === 416) return Buffer.alloc(0);
      throw e;
    }
  }

  async stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    const key = this.key(name);
    try {
      const p = await this.call(name, op, (abortSignal) =>
        this.container.getBlobClient(key).getProperties({ abortSignal }),
      );
      return { name, sizeBytes: p.contentLength ?? 0, modifiedAt: p.lastModified ?? new Date(0) };
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    let marker: string | undefined;
    do {
      const page = await this.call(`list ${prefix}`, op, async (abortSignal) => {
        const it = this.container
          .listBlobsFlat({ prefix: this.prefix + prefix, abortSignal })
          .byPage({ maxPageSize: this.pageSize, continuationToken: marker });
        const r = await it.next();
        return r.done ? undefined : r.value;
      });
      if (!page) return;
      for (const b of page.segment.blobItems) {
        const name = b.name.slice(this.prefix.length);
        if (!b.name.startsWith(this.prefix) || !isValidBlobName(name)) continue;
        yield {
          name: name as BlobName,
          sizeBytes: b.properties.contentLength ?? 0,
          modifiedAt: b.properties.lastModified,
        };
      }
      marker = page.continuationToken || undefined;
    } while (marker);
  }

  async delete(name: BlobName, op?: Op): Promise<void> {
    const key = this.key(name);
    try {
      await this.call(name, op, (abortSignal) =>
        this.container.getBlobClient(key).delete({ abortSignal, deleteSnapshots: 'include' }),
      );
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return;
      throw e;
    }
  }

  // ---- retention locks (version-level immutability; the container or account must have it enabled)

  async retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const key = this.key(name);
    try {
      const p = await this.call(name, op, (abortSignal) =>
        this.container.getBlobClient(key).getProperties({ abortSignal }),
      );
      const until = p.immutabilityPolicyExpiresOn;
      const active = until !== undefined && until.getTime() > Date.now();
      if (!active && !p.legalHold) return undefined;
      return { ...(active ? { lockedUntil: until.toISOString() } : {}), legalHold: p.legalHold === true };
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  /**
   * Set Blob Immutability Policy (mode Locked: cannot be shortened or removed, only extended) and/or Set Legal Hold.
   * The service rejects shortening a Locked policy: callers check `retention` first (engine/lock.ts does).
   */
  async lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    try {
      await this.lockUnchecked(name, req, op);
    } catch (e) {
      throw lockRefusal(
        e,
        this.location,
        'enable version-level immutability on the storage account or container (it cannot be enabled on Azurite, ' +
          'which answers 501)',
      );
    }
  }

  private async lockUnchecked(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    const client = this.container.getBlobClient(this.key(name));
    if (req.until) {
      await this.call(`lock ${name}`, op, (abortSignal) =>
        client.setImmutabilityPolicy({ expiriesOn: req.until!, policyMode: 'Locked' }, { abortSignal }),
      );
    }
    if (req.legalHold)
      await this.call(`legal hold ${name}`, op, (abortSignal) => client.setLegalHold(true, { abortSignal }));
  }

  // ---- access tiers

  async tierOf(name: BlobName, op?: Op): Promise<TierInfo | undefined> {
    const key = this.key(name);
    try {
      const p = await this.call(name, op, (abortSignal) =>
        this.container.getBlobClient(key).getProperties({ abortSignal }),
      );
      const status = p.archiveStatus ?? '';
      const to = /rehydrate-pending-to-(hot|cool|cold)/i.exec(status)?.[1];
      return {
        tier: normalizeTier(p.accessTier),
        ...(to
          ? {
              rehydratingTo: normalizeTier(to),
              rehydratePriority: (p.rehydratePriority as RehydratePriority | undefined) ?? 'Standard',
            }
          : {}),
        ...(p.accessTierChangedOn ? { tierChangedAt: p.accessTierChangedOn } : {}),
      };
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  async setTier(name: BlobName, tier: AccessTier, opts: { priority?: RehydratePriority } = {}, op?: Op): Promise<void> {
    const key = this.key(name);
    await this.call(`set tier of ${name}`, op, (abortSignal) =>
      this.container
        .getBlobClient(key)
        .setAccessTier(tier, { abortSignal, ...(opts.priority ? { rehydratePriority: opts.priority } : {}) }),
    );
  }

  // ---- server-side copy (Copy Blob From URL)

  /** The URL of a blob, for a server-side copy by another account (with a SAS appended by the caller). */
  blobUrl(name: BlobName): string {
    return this.container.getBlobClient(this.key(name)).url;
  }

  /**
   * A read-only SAS URL for one blob, valid for `validMs`: only with a shared key credential (account key or
   * connection string with a key); undefined otherwise (then copies go through this machine).
   */
  async readSasUrl(name: BlobName, validMs: number): Promise<string | undefined> {
    const client = this.container.getBlobClient(this.key(name));
    try {
      return await client.generateSasUrl({
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + validMs),
      });
    } catch {
      return undefined;
    }
  }

  /** Set once the service could not read a copy source (network rules, another cloud, an emulator instance). */
  private serverSideUnavailable = false;

  /**
   * Between two Azure stores whose source can sign a read SAS (shared key): Copy Blob From URL. When the service
   * cannot read the source (CannotVerifyCopySource: firewall rules, private endpoints, two Azurite instances), it
   * answers undefined from then on and the caller copies the bytes itself.
   */
  async serverSideCopyFrom(source: BlobStore, name: BlobName, op?: Op): Promise<'created' | 'exists' | undefined> {
    const s = innermost(source);
    if (this.serverSideUnavailable || !(s instanceof AzureBlobStore)) return undefined;
    const url = await s.readSasUrl(name, 3_600_000);
    if (!url) return undefined;
    try {
      return await this.copyFromUrl(name, url, op);
    } catch (e) {
      if (e instanceof CofferError && e.details.serviceCode === 'CannotVerifyCopySource') {
        this.serverSideUnavailable = true;
        return undefined;
      }
      throw e;
    }
  }

  /**
   * Copy Blob From URL (synchronous, up to 256 MiB) into `name`, only if absent. The service reads the source
   * directly: the bytes do not pass through this machine.
   */
  async copyFromUrl(name: BlobName, sourceUrl: string, op?: Op): Promise<'created' | 'exists'> {
    const key = this.key(name);
    try {
      await this.call(`copy into ${name}`, op, (abortSignal) =>
        this.container.getBlobClient(key).syncCopyFromURL(sourceUrl, { abortSignal, conditions: { ifNoneMatch: '*' } }),
      );
      return 'created';
    } catch (e) {
      if (
        e instanceof CofferError &&
        (e.details.status === 409 || e.details.status === 412) &&
        azureErrorCode(e.cause) !== 'CannotVerifyCopySource'
      )
        return 'exists';
      throw e;
    }
  }
}

function normalizeTier(t: string | undefined): AccessTier | undefined {
  if (!t) return undefined;
  const m = /^(hot|cool|cold|archive)$/i.exec(t);
  return m ? ((m[1]![0]!.toUpperCase() + m[1]!.slice(1).toLowerCase()) as AccessTier) : undefined;
}

/**
 * The whole body. With a known length, the pieces are copied into one buffer as they arrive (each is garbage at once:
 * one chunk's worth of memory per download in flight, not the pieces and their concatenation).
 */
async function readAll(body: NodeJS.ReadableStream | undefined, length?: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  if (length !== undefined && length > 0 && length <= 256 * 1024 * 1024) {
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    for await (const c of body as AsyncIterable<Buffer | string>) {
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      // longer than announced: the caller sees the length differ (TRANSIENT)
      if (got + b.length > length) return Buffer.concat([out.subarray(0, got), b]);
      b.copy(out, got);
      got += b.length;
    }
    return got === length ? out : out.subarray(0, got);
  }
  const parts: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer | string>) parts.push(typeof c === 'string' ? Buffer.from(c) : c);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
