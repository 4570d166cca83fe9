export { VimClient, type ServiceContent, type VimFault } from './vim-client.js';
export {
  HttpsClient,
  fetchThumbprint,
  formatFingerprint,
  normalizeThumbprint,
  type TlsPolicy,
} from './https-client.js';
export { MoRef } from './xml.js';
export {
  loadInventory,
  selectVms,
  type Inventory,
  type VmInfo,
  type DatastoreInfo,
  type InventoryEntity,
} from './inventory.js';
export type { VmDisk, VmHardware, VmNic, VmController, VmSnapshot } from './vm-model.js';
export { connectVsphere, isVsphereUrl, parseVsphereUrl, type VsphereUrl, type ConnectOptions } from './vsphere-url.js';
export { openVsphereBackup, type VsphereBackupOptions, type VsphereVmBackup } from './vsphere-backup.js';
export { openVmBackup, cofferSnapshots, SNAPSHOT_PREFIX, type VmBackupSession } from './vm-backup.js';
export {
  HttpDatastoreTransport,
  NbdDiskTransport,
  folderUrl,
  type DiskTransport,
  type DiskReader,
} from './disk-transport.js';
export { VsphereDiskSource } from './vsphere-disk-source.js';
export { parseStoredConfig, type StoredVmConfig } from './vm-config.js';
export {
  openVsphereRestore,
  uploadToDatastore,
  type VsphereRestoreOptions,
  type VsphereRestorePlan,
  type VsphereVmRestore,
} from './vsphere-restore.js';
export {
  vsphereVmSource,
  vsphereSourceOpener,
  vsphereRestoreTargetOpener,
  vsphereQuickRollback,
  vcenterVmRestore,
  HOTADD_ENV,
  type VcenterAccess,
} from './engine-adapter.js';
export { checkVsphere, PRIVILEGES, type CheckReport, type VmCheck } from './vsphere-check.js';
export {
  quickRollback,
  type QuickRollbackOptions,
  type QuickRollbackResult,
  type RollbackPoint,
} from './restore-quick-rollback.js';
