import { CofferError } from '../shared/index.js';
import type { BlobStore } from './blob-store.js';
import { RetryingBlobStore, type RetryPolicy } from './retrying-blob-store.js';

/** True for the URL schemes of object-storage repositories. */
export function isCloudSpec(spec: string): boolean {
  return /^(azure|s3):\/\//i.test(spec);
}

/**
 * Opens azure:// or s3:// repository locations behind the retrying wrapper. The SDKs load only here, on demand
 * (~0.5 s each), so local repositories do not pay for them.
 */
export async function openCloudStore(
  spec: string,
  env: Record<string, string | undefined>,
  opts: { create: boolean; retry?: RetryPolicy },
): Promise<BlobStore> {
  let store: BlobStore;
  if (/^azure:\/\//i.test(spec)) {
    const { openAzureStore } = await import('./azure/azure-location.js');
    store = await new RetryingBlobStore({ location: spec } as BlobStore, opts.retry).retryOpen(() =>
      openAzureStore(spec, env, opts),
    );
  } else if (/^s3:\/\//i.test(spec)) {
    const { openS3Store } = await import('./s3/s3-location.js');
    store = await new RetryingBlobStore({ location: spec } as BlobStore, opts.retry).retryOpen(() =>
      openS3Store(spec, env, opts),
    );
  } else {
    throw new CofferError('USAGE', `unsupported repository location ${spec}`, {
      hint: 'use a directory, azure://ACCOUNT/CONTAINER[/PREFIX] or s3://BUCKET[/PREFIX]',
    });
  }
  return new RetryingBlobStore(store, opts.retry);
}
