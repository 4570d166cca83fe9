import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CofferError } from '../../shared/index.js';
import { isValidBlobName } from '../blob-store.js';
import { S3BlobStore, type S3PutMode } from './s3-blob-store.js';
import { translateS3Error } from './s3-errors.js';

export interface S3Location {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region?: string;
  putMode?: S3PutMode;
  requestTimeoutMs?: number;
}

/** Parses s3://BUCKET[/PREFIX][?endpoint=URL&region=R&put=if-none-match|head&timeout=MS]. */
export function parseS3Url(spec: string): S3Location {
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    throw new CofferError('USAGE', `${spec} is not a valid s3:// URL`);
  }
  const bad = (why: string) => new CofferError('USAGE', `${spec}: ${why}`, { hint: 'write s3://BUCKET[/PREFIX]' });
  if (u.protocol !== 's3:') throw bad('not an s3:// URL');
  if (u.username || u.password)
    throw bad('put no credentials in the URL; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw bad('invalid bucket name');
  const rest = u.pathname.replace(/^\//, '').replace(/\/$/, '');
  if (rest !== '' && !isValidBlobName(rest)) throw bad(`invalid prefix ${rest}`);
  const loc: S3Location = { bucket, prefix: rest === '' ? '' : `${rest}/` };
  for (const [k, v] of u.searchParams) {
    if (k === 'endpoint') loc.endpoint = v;
    else if (k === 'region') loc.region = v;
    else if (k === 'put' && (v === 'if-none-match' || v === 'head')) loc.putMode = v;
    else if (k === 'timeout' && /^\d+$/.test(v)) loc.requestTimeoutMs = Number(v);
    else throw bad(`unknown parameter ${k}=${v}`);
  }
  return loc;
}

/**
 * Opens s3://BUCKET[/PREFIX]. Credentials: the SDK's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
 * AWS_SESSION_TOKEN, AWS_PROFILE, SSO, instance roles). Endpoint: ?endpoint= or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
 * (then path-style addressing, as MinIO, Ceph and s3rver want). Put mode: ?put= or COFFER_S3_PUT_MODE.
 */
export async function openS3Store(
  spec: string,
  env: Record<string, string | undefined>,
  opts: { create: boolean },
): Promise<S3BlobStore> {
  const loc = parseS3Url(spec);
  const endpoint = loc.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const putMode = loc.putMode ?? (env.COFFER_S3_PUT_MODE as S3PutMode | undefined);
  if (putMode !== undefined && putMode !== 'head' && putMode !== 'if-none-match')
    throw new CofferError('USAGE', `COFFER_S3_PUT_MODE must be if-none-match or head`);
  const client = new S3Client({
    region: loc.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    maxAttempts: 1, // RetryingBlobStore retries
    // one keep-alive pool per store, also for bodies the SDK sends with Expect: 100-continue (its default agent is
    // replaced by a throwaway one without keep-alive for those); 64 sockets = the most requests RetryingBlobStore lets
    // through
    requestHandler: {
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
    },
    // keys from the given environment; otherwise the SDK's own chain (profiles, SSO, instance roles)
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          credentials: {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
          },
        }
      : {}),
  });
  const location = `s3://${loc.bucket}${loc.prefix ? `/${loc.prefix.replace(/\/$/, '')}` : ''}`;
  const store = new S3BlobStore(client, {
    bucket: loc.bucket,
    prefix: loc.prefix,
    location,
    ...(putMode ? { putMode } : {}),
    ...(loc.requestTimeoutMs ? { requestTimeoutMs: loc.requestTimeoutMs } : {}),
  });
  if (opts.create) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: loc.bucket }));
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists')
        throw translateS3Error(e, location, 'create bucket');
    }
  }
  return store;
}
