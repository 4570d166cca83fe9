import { CofferError } from '../../shared/index.js';

/** Node/undici network failures: the request may not have reached the service; worth retrying. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'REQUEST_SEND_ERROR',
  'UND_ERR_SOCKET',
]);

interface RestLike {
  name?: string;
  statusCode?: number;
  code?: string;
  message?: string;
  details?: { errorCode?: string };
}

/** The service's error code (x-ms-error-code), e.g. BlobNotFound, ContainerNotFound, AuthenticationFailed. */
export function azureErrorCode(e: unknown): string | undefined {
  const r = e as RestLike;
  return r?.details?.errorCode ?? r?.code;
}

/**
 * Translates an @azure/storage-blob error into a CofferError (the SDK's errors never leave storage/azure).
 * `where` is the store location, `what` the blob or operation.
 */
export function translateAzureError(e: unknown, where: string, what: string): CofferError {
  if (e instanceof CofferError) return e;
  const r = e as RestLike;
  const status = r?.statusCode;
  const code = azureErrorCode(e) ?? '';
  const msg =
    `${what} at ${where}: ${status ? `HTTP ${status} ` : ''}${code ? `${code} ` : ''}${firstLine(r?.message)}`.trim();
  const details = { location: where, blob: what, status, serviceCode: code || undefined };
  if (code === 'ContainerNotFound') {
    return new CofferError('REPO_NOT_FOUND', `${where} is not a Coffer repository (no such container)`, {
      hint: 'create it with `coffer init --repo azure://ACCOUNT/CONTAINER`, or check the container name',
      details,
      cause: e,
    });
  }
  if (code === 'BlobNotFound' || (status === 404 && code !== 'ResourceNotFound' && code !== 'AccountNotFound')) {
    return new CofferError('NOT_FOUND', `blob ${what} not found at ${where}`, { details, cause: e });
  }
  const authName = /^(CredentialUnavailableError|AggregateAuthenticationError|AuthenticationError)$/.test(
    r?.name ?? '',
  );
  if (
    status === 401 ||
    status === 403 ||
    authName ||
    code === 'AuthenticationFailed' ||
    code === 'AuthorizationFailure'
  ) {
    return new CofferError('ACCESS_DENIED', `the storage account refused access: ${msg}`, {
      hint:
        'check AZURE_STORAGE_KEY / AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_SAS_TOKEN (expiry, ' +
        'permissions rwdlc) or the Azure AD role (Storage Blob Data Contributor)',
      details,
      cause: e,
    });
  }
  if (code === 'BlobArchived') {
    return new CofferError('ARCHIVED', `blob ${what} is in the Archive tier at ${where}`, {
      hint:
        'rehydrate the restore point first: `coffer archive rehydrate --repo R ID`, then wait until `coffer ' +
        'archive status` says it is done',
      details,
      cause: e,
    });
  }
  if (
    code.startsWith('BlobImmutable') ||
    code === 'BlobImmutableDueToPolicy' ||
    code === 'BlobImmutableDueToLegalHold'
  ) {
    return new CofferError('IMMUTABLE', `blob ${what} is under a retention lock or legal hold at ${where}`, {
      details,
      cause: e,
    });
  }
  if (status === 501 || code === 'FeatureNotSupported' || code === 'NotImplemented') {
    return new CofferError('IO', `${msg} (the service does not support this operation)`, {
      details: { ...details, unsupported: true },
      cause: e,
    });
  }
  if (
    status === 408 ||
    status === 429 ||
    (status !== undefined && status >= 500) ||
    code === 'ServerBusy' ||
    code === 'OperationTimedOut'
  ) {
    return new CofferError('TRANSIENT', msg, { details, cause: e });
  }
  if (
    status === undefined &&
    (NETWORK_CODES.has(code) ||
      /socket hang up|ECONNRESET|ECONNREFUSED|other side closed|terminated/i.test(r?.message ?? ''))
  ) {
    return new CofferError('TRANSIENT', `cannot reach ${where}: ${firstLine(r?.message) || code}`, {
      details,
      cause: e,
    });
  }
  if (code === 'ENOTFOUND') {
    return new CofferError('IO', `cannot resolve the storage endpoint of ${where}: ${firstLine(r?.message)}`, {
      hint:
        'check the account name or the endpoint (AZURE_STORAGE_ENDPOINT, ?endpoint=, BlobEndpoint in the ' +
        'connection string)',
      details,
      cause: e,
    });
  }
  return new CofferError('IO', msg, { details, cause: e });
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0]!.slice(0, 300);
}
