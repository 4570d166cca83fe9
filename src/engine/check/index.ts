export { checkPoint, type CheckRecord, type VolumeCheck, type CheckPointOptions } from './recoverability-check.js';
export { FSCK_TOOLS, runTool, type ToolRun } from './fsck-tools.js';
export {
  entropyBitsPerByte,
  findRenames,
  isRansomNote,
  noEarlierPoint,
  scanFileIndicators,
  INDICATOR_LIMITS,
  INDICATOR_THRESHOLDS,
  type IndicatorRecord,
} from './file-indicators.js';
export { bootCheck, BOOT_DEFAULTS, type BootCheck, type BootCheckOptions } from './boot-check.js';
export { requireBootScript, BOOT_SCRIPT_LIMITS, type BootScriptResult } from './boot-script.js';
export { AgentLineParser, GUEST_AGENT_LIMITS, GUEST_AGENT_PORT, waitForGuestAgent } from './guest-agent.js';
export { BOOT_LIMITS, QEMU_BINARY, bootSize, consoleTail, kvmUsable } from './qemu-boot.js';
