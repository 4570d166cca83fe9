import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import { CofferError } from '../../shared/index.js';
import { isValidBlobName } from '../blob-store.js';
import { AzureBlobStore } from './azure-blob-store.js';

export interface AzureLocation {
  account: string;
  container: string;
  /** '' or ending in '/' */
  prefix: string;
  /** ?endpoint=URL: the blob service endpoint (Azurite: http://127.0.0.1:10000/devstoreaccount1) */
  endpoint?: string;
  /** ?timeout=MS: per-request timeout */
  requestTimeoutMs?: number;
}

/** Parses azure://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL&timeout=MS]. */
export function parseAzureUrl(spec: string): AzureLocation {
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    throw new CofferError('USAGE', `${spec} is not a valid azure:// URL`);
  }
  const bad = (why: string) =>
    new CofferError('USAGE', `${spec}: ${why}`, { hint: 'write azure://ACCOUNT/CONTAINER[/PREFIX]' });
  if (u.protocol !== 'azure:') throw bad('not an azure:// URL');
  if (u.username || u.password) throw bad('put no credentials in the URL; use AZURE_STORAGE_* environment variables');
  const account = u.hostname;
  if (!/^[a-z0-9]{3,24}$/.test(account)) throw bad('the account name must be 3-24 lower-case letters and digits');
  const segs = u.pathname.split('/').filter((s, i) => i > 0 || s !== '');
  const container = segs.shift() ?? '';
  if (!/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/.test(container))
    throw bad('the container name must be 3-63 lower-case letters, digits and single hyphens');
  const rest = segs.join('/').replace(/\/$/, '');
  if (rest !== '' && !isValidBlobName(rest)) throw bad(`invalid prefix ${rest}`);
  const loc: AzureLocation = { account, container, prefix: rest === '' ? '' : `${rest}/` };
  for (const [k, v] of u.searchParams) {
    if (k === 'endpoint') loc.endpoint = v.replace(/\/$/, '');
    else if (k === 'timeout' && /^\d+$/.test(v)) loc.requestTimeoutMs = Number(v);
    else throw bad(`unknown parameter ${k}`);
  }
  return loc;
}

/** The URL without secrets, as `location` shows it. */
export function azureLocationString(l: AzureLocation): string {
  return `azure://${l.account}/${l.container}${l.prefix ? `/${l.prefix.replace(/\/$/, '')}` : ''}`;
}

function parseConnectionString(cs: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of cs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

const PIPELINE: StoragePipelineOptions = {
  retryOptions: { maxTries: 1 }, // RetryingBlobStore retries (TRANSIENT only), with backoff
  userAgentOptions: { userAgentPrefix: 'coffer' },
};

/**
 * Credentials, the first that applies (docs/DESIGN.md §Cloud repositories):
 * 1. AZURE_STORAGE_CONNECTION_STRING whose AccountName is the URL's account (or that has no AccountName, e.g. a
 *    SAS connection string); its BlobEndpoint is used (Azurite's has one);
 * 2. AZURE_STORAGE_ACCOUNT equal to the URL's account, with AZURE_STORAGE_KEY;
 * 3. AZURE_STORAGE_SAS_TOKEN (a container or account SAS);
 * 4. Azure AD: DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI).
 * The endpoint: ?endpoint= in the URL, else AZURE_STORAGE_ENDPOINT, else https://ACCOUNT.blob.core.windows.net.
 */
export async function serviceClientFor(
  loc: AzureLocation,
  env: Record<string, string | undefined>,
): Promise<{ client: BlobServiceClient; credential: string }> {
  const endpoint =
    loc.endpoint ?? env.AZURE_STORAGE_ENDPOINT?.replace(/\/$/, '') ?? `https://${loc.account}.blob.core.windows.net`;
  const cs = env.AZURE_STORAGE_CONNECTION_STRING;
  if (cs) {
    const f = parseConnectionString(cs);
    if (!f.AccountName || f.AccountName === loc.account) {
      if (f.AccountName && f.AccountKey) {
        const ep = loc.endpoint ?? f.BlobEndpoint?.replace(/\/$/, '') ?? endpoint;
        return {
          client: new BlobServiceClient(ep, new StorageSharedKeyCredential(f.AccountName, f.AccountKey), PIPELINE),
          credential: 'connection-string',
        };
      }
      if (f.SharedAccessSignature) {
        const ep = loc.endpoint ?? f.BlobEndpoint?.replace(/\/$/, '') ?? endpoint;
        return {
          client: new BlobServiceClient(
            `${ep}?${f.SharedAccessSignature.replace(/^\?/, '')}`,
            new AnonymousCredential(),
            PIPELINE,
          ),
          credential: 'connection-string-sas',
        };
      }
      throw new CofferError(
        'USAGE',
        'AZURE_STORAGE_CONNECTION_STRING has neither AccountName+AccountKey nor SharedAccessSignature',
      );
    }
  }
  if (env.AZURE_STORAGE_ACCOUNT === loc.account && env.AZURE_STORAGE_KEY) {
    let cred: StorageSharedKeyCredential;
    try {
      cred = new StorageSharedKeyCredential(loc.account, env.AZURE_STORAGE_KEY);
    } catch (e) {
      throw new CofferError('USAGE', `AZURE_STORAGE_KEY is not a valid account key: ${(e as Error).message}`);
    }
    return { client: new BlobServiceClient(endpoint, cred, PIPELINE), credential: 'account-key' };
  }
  if (env.AZURE_STORAGE_SAS_TOKEN) {
    return {
      client: new BlobServiceClient(
        `${endpoint}?${env.AZURE_STORAGE_SAS_TOKEN.replace(/^\?/, '')}`,
        new AnonymousCredential(),
        PIPELINE,
      ),
      credential: 'sas',
    };
  }
  const { DefaultAzureCredential } = await import('@azure/identity');
  return { client: new BlobServiceClient(endpoint, new DefaultAzureCredential(), PIPELINE), credential: 'azure-ad' };
}

/** Opens an azure:// repository location; with `create`, creates the container if missing (init). */
export async function openAzureStore(
  spec: string,
  env: Record<string, string | undefined>,
  opts: { create: boolean },
): Promise<AzureBlobStore> {
  const loc = parseAzureUrl(spec);
  const { client } = await serviceClientFor(loc, env);
  const store = new AzureBlobStore(client.getContainerClient(loc.container), {
    prefix: loc.prefix,
    location: azureLocationString(loc),
    ...(loc.requestTimeoutMs ? { requestTimeoutMs: loc.requestTimeoutMs } : {}),
  });
  if (opts.create) await store.ensureContainer();
  return store;
}
