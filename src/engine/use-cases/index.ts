export {
  withCodecPool,
  type UseCaseContext,
  type ProgressEvent,
  type WarningEvent,
  type EventSink,
} from './context.js';
export { openDiskSet, type VmSource, type VmSourceOpener, type CaptureReport } from './vm-source.js';
export { backupVm, type BackupVmRequest, type BackupVmEvent, type BackupVmResult } from './backup-vm.js';
export {
  restoreDiskImage,
  DISK_IMAGE_FORMATS,
  type DiskImageFormat,
  type RestoreDiskImageRequest,
  type RestoreDiskImageEvent,
  type RestoreDiskImageResult,
  type ExportResult,
} from './restore-disk-image.js';
export {
  restoreVm,
  type VmRestoreTarget,
  type VmRestoreTargetOpener,
  type RestoreVmRequest,
  type RestoreVmEvent,
  type RestoreVmResult,
} from './restore-vm.js';
export {
  planVmRestore,
  rollbackVm,
  type PlanVmRestoreRequest,
  type PlanVmRestoreResult,
  type RollbackSource,
  type RollbackVmRequest,
  type VmRollback,
} from './plan-vm-restore.js';
export {
  verifyRepository,
  verifyFailure,
  type VerifyRepositoryRequest,
  type VerifyRepositoryEvent,
} from './verify-repository.js';
export {
  copyRestorePoints,
  type CopySelection,
  type CopyRestorePointsRequest,
  type CopyRestorePointsEvent,
} from './copy-restore-points.js';
export {
  pruneRepository,
  type PruneRepositoryRequest,
  type PruneRepositoryEvent,
  type PruneRepositoryResult,
} from './prune-repository.js';
export { forgetPoints, type ForgetPointsRequest } from './forget-points.js';
export { restoreFiles, type RestoreFilesRequest, type RestoreFilesEvent } from './restore-files.js';
export {
  findFiles,
  diffFiles,
  FIND_DEFAULTS,
  type FindFilesRequest,
  type FindFilesResult,
  type DiffFilesRequest,
  type DiffFilesResult,
} from './find-files.js';
export {
  pointStatuses,
  statusOf,
  resolvePointRef,
  lastBootCheck,
  bootSummary,
  type PointWithStatus,
  type BootSummary,
} from './point-status.js';
export {
  checkRestorePoint,
  checkFileIndicators,
  type CheckPointRequest,
  type CheckPointEvent,
  type FileIndicatorsRequest,
} from './check-point.js';
export { serveDisk, type ServeDiskRequest, type ServedDisk } from './serve-disk.js';
