export { scanVolumeGroups, findPhysicalVolumes } from './physical-volumes.js';
export { VolumeGroups, LogicalVolumeReader, type LogicalVolumeInfo, type PvCandidate } from './volume-groups.js';
export { hasLvmLabel } from './label.js';
