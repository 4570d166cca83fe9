export { checkPoint, type CheckRecord, type VolumeCheck, type CheckPointOptions } from './recoverability-check.js';
export { FSCK_TOOLS, runTool, type ToolRun } from './fsck-tools.js';
