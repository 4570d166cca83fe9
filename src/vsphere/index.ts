export { VimClient, type ServiceContent, type VimFault } from './vim-client.js';
export { HttpsClient, fetchThumbprint, formatFingerprint, normalizeThumbprint, type TlsPolicy } from './https-client.js';
export { MoRef } from './xml.js';
export { loadInventory, selectVms, type Inventory, type VmInfo, type DatastoreInfo, type InventoryEntity } from './inventory.js';
export type { VmDisk, VmHardware, VmNic, VmController, VmSnapshot } from './vm-model.js';
export { connectVsphere, isVsphereUrl, parseVsphereUrl, type VsphereUrl, type ConnectOptions } from './vsphere-url.js';
