export { ChangeSignals, INCOMPRESSIBLE_RATIO, SIGNAL_REGIONS } from './change-signals.js';
export {
  DEFAULT_SIGNAL_THRESHOLDS,
  measuresOf,
  medianAndSpread,
  scoreSignals,
  type DiskMeasures,
  type SignalThresholds,
} from './anomaly-score.js';
export { pointState, latestClean, type PointState, type PointStatus } from './point-state.js';
