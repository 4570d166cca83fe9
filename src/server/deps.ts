import type { CodecParams, CodecPool } from '../engine/index.js';
import type { Logger } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import type { BlobStore } from '../storage/index.js';

/**
 * What the server needs from the outside world; bin/coffer.ts (the composition root) supplies the real things.
 * These are the seams other areas plug into: `openStore` gains cloud repositories, `openSource` vSphere disks.
 */
export interface ServerDeps {
  env: Record<string, string | undefined>;
  /** aborted when the process is asked to stop (SIGINT/SIGTERM) */
  signal: AbortSignal;
  openStore(spec: string, opts: { create: boolean }): Promise<BlobStore>;
  openSource(spec: string, opts: { logger: Logger; signal: AbortSignal; timeoutMs?: number }): Promise<BlockSource>;
  createPool(params: CodecParams | Promise<CodecParams>): CodecPool;
}
