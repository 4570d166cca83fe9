import { CofferError } from '../../shared/index.js';

/** FS_CORRUPT with the reader's prefix: everything an NTFS volume says is untrusted. */
export function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', `ntfs: ${msg}`, { details });
}

export function unsupported(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_UNSUPPORTED', `ntfs: ${msg}`, { details });
}
