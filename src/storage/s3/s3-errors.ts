import { CofferError } from '../../shared/index.js';

interface S3Like {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

const NETWORK = new RegExp(
  'ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|' +
    'socket hang up|TimeoutError|RequestTimeout',
);

/** Translates an @aws-sdk/client-s3 error into a CofferError (SDK errors never leave storage/s3). */
export function translateS3Error(e: unknown, where: string, what: string): CofferError {
  if (e instanceof CofferError) return e;
  const r = e as S3Like;
  const status = r?.$metadata?.httpStatusCode ?? r?.$response?.statusCode;
  const code = r?.Code ?? r?.name ?? r?.code ?? '';
  const msg =
    `${what} at ${where}: ${status ? `HTTP ${status} ` : ''}${code} ${(r?.message ?? '').split('\n')[0]}`.trim();
  const details = { location: where, blob: what, status, serviceCode: code || undefined };
  if (code === 'NoSuchBucket') {
    return new CofferError('REPO_NOT_FOUND', `${where} is not a Coffer repository (no such bucket)`, {
      hint: 'create it with `coffer init --repo s3://BUCKET`, or check the bucket name and endpoint',
      details,
      cause: e,
    });
  }
  if (code === 'NoSuchKey' || code === 'NotFound' || status === 404)
    return new CofferError('NOT_FOUND', `blob ${what} not found at ${where}`, { details, cause: e });
  if (status === 416 || code === 'InvalidRange')
    return new CofferError('IO', msg, { details: { ...details, status: 416 }, cause: e });
  if (
    status === 401 ||
    status === 403 ||
    /^(AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|ExpiredToken|InvalidToken)$/.test(code) ||
    code === 'CredentialsProviderError'
  ) {
    return new CofferError('ACCESS_DENIED', `the storage service refused access: ${msg}`, {
      hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN / AWS_PROFILE and the bucket policy',
      details,
      cause: e,
    });
  }
  if (code === 'InvalidObjectState') {
    return new CofferError('ARCHIVED', `blob ${what} is in an archive storage class at ${where}`, {
      hint: 'restore it first (`coffer archive rehydrate`)',
      details,
      cause: e,
    });
  }
  if (status === 501 || code === 'NotImplemented') {
    return new CofferError('IO', `${msg} (the service does not support this operation)`, {
      details: { ...details, unsupported: true },
      cause: e,
    });
  }
  if (
    status === 408 ||
    status === 429 ||
    (status !== undefined && status >= 500) ||
    /^(SlowDown|ServiceUnavailable|InternalError|RequestTimeout|ConditionalRequestConflict)$/.test(code) ||
    status === 409
  ) {
    return new CofferError('TRANSIENT', msg, { details, cause: e });
  }
  if (status === undefined && NETWORK.test(`${code} ${r?.message ?? ''}`)) {
    return new CofferError('TRANSIENT', `cannot reach ${where}: ${r?.message ?? code}`, { details, cause: e });
  }
  return new CofferError('IO', msg, { details, cause: e });
}
