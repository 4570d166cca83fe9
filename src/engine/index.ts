export * from './backup.js';
export * from './codec-pool.js';
export * from './restore.js';
export * from './verify.js';
export { TOOL_VERSION } from './version.js';
export type { CodecParams } from './codec-protocol.js';
export { RestorePointDevice, type RestorePointDeviceOptions } from './mount.js';
export { exportDisk, type ExportFormat } from './export-image.js';
export {
  listGuestPartitions,
  listGuestFiles,
  openGuestFile,
  extractGuestFiles,
  type FileInfo,
  type FileFailure,
  type ListResult,
  type ListPage,
  type GuestFile,
  type ExtractResult,
  type GuestLocation,
} from './file-restore.js';
export { GuestGlob, findInVolume, diffVolumes, type FindMatch, type FileChange } from './file-search.js';
export { openGuestArchive, tarEntryHeader, type GuestArchive } from './guest-tar.js';
export * from './copy.js';
export * from './lock.js';
export * from './archive.js';
export * from './retention.js';
export * from './forget.js';
export * from './gc.js';
export { GcGuard, GC_SWEEP_OPERATION } from './gc-guard.js';
export * from './repair.js';
export * from './use-cases/index.js';
export * from './signals/index.js';
export * from './check/index.js';
