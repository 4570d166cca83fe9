import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { CofferError, type BlobName, type Op } from '../../shared/index.js';
import { isValidBlobName, type BlobInfo, type ByteRange, type RetentionInfo } from '../blob-store.js';
import { ownCapabilities, type CapableBlobStore, type PutFirst } from '../capabilities.js';
import { lockRefusal, type LockRequest, type LockingBlobStore } from '../cloud-store.js';
import { abortError, requestSignal } from '../request-signal.js';
import { translateS3Error } from './s3-errors.js';

/**
 * How put avoids overwriting:
 * - 'if-none-match': PutObject with If-None-Match: * (AWS S3 since 2024, R2, MinIO...): atomic; 412 = 'exists'.
 * - 'head': HEAD, then PUT when absent. Not atomic: two writers that both see "absent" both PUT, the later one
 *   replaces the first. For chunks and indexes the two are encryptions of the same plaintext under the same name
 *   (both valid), and manifests have random ids, so data stays correct; leases lose their mutual exclusion. For
 *   services that ignore If-None-Match (s3rver, old Ceph): documented in DESIGN.md §Cloud repositories.
 */
export type S3PutMode = 'if-none-match' | 'head';

export interface S3BlobStoreOptions {
  bucket: string;
  prefix?: string;
  putMode?: S3PutMode;
  requestTimeoutMs?: number;
  location: string;
  /** Object Lock mode for `lock` (default COMPLIANCE: nobody, not even the root account, can shorten it) */
  lockMode?: 'COMPLIANCE' | 'GOVERNANCE';
}

/** Blobs in an S3 bucket (one object each). No retries here: RetryingBlobStore retries TRANSIENT. */
export class S3BlobStore implements CapableBlobStore, LockingBlobStore, PutFirst {
  readonly location: string;
  /** putFirst in both put modes: with 'head' a put already looks first (a stat before it would be a third request) */
  readonly capability = ownCapabilities(this, ['locks', 'putFirst']);
  readonly putAnswersExists = true;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly putMode: S3PutMode;
  private readonly timeoutMs: number;
  private readonly lockMode: 'COMPLIANCE' | 'GOVERNANCE';

  constructor(
    readonly client: S3Client,
    opts: S3BlobStoreOptions,
  ) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    this.putMode = opts.putMode ?? 'if-none-match';
    this.timeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.location = opts.location;
    this.lockMode = opts.lockMode ?? 'COMPLIANCE';
  }

  private key(name: string): string {
    if (!isValidBlobName(name)) throw new CofferError('INTERNAL', `invalid blob name ${JSON.stringify(name)}`);
    return this.prefix + name;
  }

  private async call<T>(what: string, op: Op | undefined, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    op?.signal?.throwIfAborted();
    const rs = requestSignal(op, this.timeoutMs);
    try {
      return await fn(rs.signal);
    } catch (e) {
      if (rs.signal.aborted) throw abortError(op, `${what} at ${this.location}`, this.timeoutMs, e);
      throw translateS3Error(e, this.location, what);
    }
  }

  async put(name: BlobName, data: Uint8Array, op?: Op): Promise<'created' | 'exists'> {
    const Key = this.key(name);
    if (this.putMode === 'head' && (await this.stat(name, op))) return 'exists';
    try {
      await this.call(name, op, (abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: data,
            ContentLength: data.length,
            ...(this.putMode === 'if-none-match' ? { IfNoneMatch: '*' } : {}),
          }),
          { abortSignal },
        ),
      );
      return 'created';
    } catch (e) {
      if (e instanceof CofferError && e.details.status === 412) return 'exists';
      throw e;
    }
  }

  async get(name: BlobName, range?: ByteRange, op?: Op): Promise<Buffer> {
    const Key = this.key(name);
    if (range && range.length <= 0) {
      if (!(await this.stat(name, op)))
        throw new CofferError('NOT_FOUND', `blob ${name} not found at ${this.location}`, { details: { blob: name } });
      return Buffer.alloc(0);
    }
    try {
      return await this.call(name, op, async (abortSignal) => {
        const r = await this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key,
            ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
          }),
          { abortSignal },
        );
        const body = r.Body ? Buffer.from(await r.Body.transformToByteArray()) : Buffer.alloc(0);
        if (r.ContentLength !== undefined && body.length !== r.ContentLength) {
          throw new CofferError(
            'TRANSIENT',
            `short read of ${name} at ${this.location}: ${body.length} of ${r.ContentLength} bytes`,
          );
        }
        return body;
      });
    } catch (e) {
      if (range && e instanceof CofferError && e.details.status === 416) return Buffer.alloc(0);
      throw e;
    }
  }

  async stat(name: BlobName, op?: Op): Promise<BlobInfo | undefined> {
    const Key = this.key(name);
    try {
      const h = await this.call(name, op, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }),
      );
      return { name, sizeBytes: h.ContentLength ?? 0, modifiedAt: h.LastModified ?? new Date(0) };
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  async *list(prefix: string, op?: Op): AsyncIterable<BlobInfo> {
    let token: string | undefined;
    do {
      const page = await this.call(`list ${prefix}`, op, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ContinuationToken: token,
            MaxKeys: 1000,
          }),
          { abortSignal },
        ),
      );
      for (const o of page.Contents ?? []) {
        const name = (o.Key ?? '').slice(this.prefix.length);
        if (!o.Key?.startsWith(this.prefix) || !isValidBlobName(name)) continue;
        yield { name: name as BlobName, sizeBytes: o.Size ?? 0, modifiedAt: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * With Object Lock the bucket is versioned, and a plain DELETE would only add a delete marker (the locked version
   * stays, invisible). So: HEAD (version id, lock state); locked -> IMMUTABLE; else DELETE that version for good.
   */
  async delete(name: BlobName, op?: Op): Promise<void> {
    const Key = this.key(name);
    let head;
    try {
      head = await this.call(name, op, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }),
      );
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return;
      throw e;
    }
    const lock = retentionOf(head);
    if (lock) {
      throw new CofferError(
        'IMMUTABLE',
        `blob ${name} is locked at ${this.location} (${lock.legalHold ? 'legal hold' : `until ${lock.lockedUntil}`})`,
        {
          details: { blob: name, ...lock },
        },
      );
    }
    const VersionId = head.VersionId && head.VersionId !== 'null' ? head.VersionId : undefined;
    try {
      await this.call(name, op, (abortSignal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, ...(VersionId ? { VersionId } : {}) }), {
          abortSignal,
        }),
      );
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return;
      throw e;
    }
  }

  async retention(name: BlobName, op?: Op): Promise<RetentionInfo | undefined> {
    const Key = this.key(name);
    try {
      const h = await this.call(name, op, (abortSignal) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }),
      );
      return retentionOf(h);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  /**
   * PutObjectRetention and PutObjectLegalHold (COMPLIANCE retention cannot be shortened: callers check `retention`
   * first).
   */
  async lock(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    try {
      await this.lockUnchecked(name, req, op);
    } catch (e) {
      throw lockRefusal(e, this.location, 'create the bucket with Object Lock enabled (s3rver answers 501)');
    }
  }

  private async lockUnchecked(name: BlobName, req: LockRequest, op?: Op): Promise<void> {
    const Key = this.key(name);
    if (req.until) {
      await this.call(`lock ${name}`, op, (abortSignal) =>
        this.client.send(
          new PutObjectRetentionCommand({
            Bucket: this.bucket,
            Key,
            Retention: { Mode: this.lockMode, RetainUntilDate: req.until },
          }),
          { abortSignal },
        ),
      );
    }
    if (req.legalHold) {
      await this.call(`legal hold ${name}`, op, (abortSignal) =>
        this.client.send(new PutObjectLegalHoldCommand({ Bucket: this.bucket, Key, LegalHold: { Status: 'ON' } }), {
          abortSignal,
        }),
      );
    }
  }
}

function retentionOf(h: {
  ObjectLockRetainUntilDate?: Date;
  ObjectLockLegalHoldStatus?: string;
}): RetentionInfo | undefined {
  const until = h.ObjectLockRetainUntilDate;
  const active = until !== undefined && until.getTime() > Date.now();
  const hold = h.ObjectLockLegalHoldStatus === 'ON';
  if (!active && !hold) return undefined;
  return { ...(active ? { lockedUntil: until.toISOString() } : {}), legalHold: hold };
}
