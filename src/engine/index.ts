export * from './backup.js';
export * from './codec-pool.js';
export * from './restore.js';
export * from './verify.js';
export { TOOL_VERSION } from './version.js';
export type { CodecParams } from './codec-protocol.js';
export { RestorePointDevice, type RestorePointDeviceOptions } from './mount.js';
export { exportDisk, type ExportFormat } from './export-image.js';
export { listGuestPartitions, listGuestFiles, openGuestFile, extractGuestFiles, type FileInfo, type FileFailure, type ListResult, type ListPage, type GuestFile, type ExtractResult, type GuestLocation } from './file-restore.js';
