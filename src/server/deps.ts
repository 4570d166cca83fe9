import type { CodecParams, CodecPool } from '../engine/index.js';
import type { Logger } from '../shared/index.js';
import type { BlockSource } from '../sources/index.js';
import type { BlobStore } from '../storage/index.js';

/**
 * What the server needs from the outside world; bin/coffer.ts (the composition root) supplies the real things.
 * `openStore` opens a repository's storage (directories, file://, and whatever cloud stores the root adds);
 * `openSource` opens the disk sources of static inventory VMs and of policies with their own `disks` (paths,
 * file://, nbd://). vCenter VMs do not come through `openSource`: a backup job of a vCenter VM opens it with
 * src/vsphere's `openVsphereBackup` (snapshot, CBT, configuration) via vcenters.ts `openVcenterVm`.
 */
export interface ServerDeps {
  env: Record<string, string | undefined>;
  /** aborted when the process is asked to stop (SIGINT/SIGTERM) */
  signal: AbortSignal;
  openStore(spec: string, opts: { create: boolean }): Promise<BlobStore>;
  openSource(spec: string, opts: { logger: Logger; signal: AbortSignal; timeoutMs?: number }): Promise<BlockSource>;
  createPool(params: CodecParams | Promise<CodecParams>): CodecPool;
}
