export { type BlockReader, SliceReader, BufferReader, FileReader, checkRange } from './block-reader.js';
export { readPartitionTable, type Partition, type PartitionTable } from './partitions.js';
export { ExtFs } from './ext.js';
export { FatFs } from './fat.js';
export { XfsFs } from './xfs/xfs.js';
export { openFilesystem, probeFilesystem, listPartitions, selectVolume, type PartitionInfo } from './volume.js';
export type { FileType, FsNode, FileExtent, GuestFs } from './types.js';
export { MAX_LINK_BYTES } from './types.js';
export { scanVolumeGroups, VolumeGroups, type LogicalVolumeInfo } from './lvm/index.js';
