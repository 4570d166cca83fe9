import { CofferError } from '../shared/index.js';
import type { BlockSource } from './block-source.js';
import { FileSource } from './file-source.js';

/** Opens a SOURCE argument: a path or file:// URL (raw image or block device). */
export async function openSource(spec: string): Promise<BlockSource> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'file') return FileSource.open(spec);
  throw new CofferError('USAGE', `unsupported source scheme ${scheme}:// (supported: file paths and file:// URLs)`);
}
