/**
 * How many chunks a backup or restore keeps in flight: enough to keep every worker busy (3 each) and about 12 MiB
 * of data moving (small chunks need more of them to hide I/O latency), at most 64. Memory stays bounded by
 * roughly twice that many chunks whatever the disk size.
 */
export function chunksInFlight(chunkSizeBytes: number, workers: number): number {
  return Math.min(64, Math.max(2, workers * 3, Math.floor((12 * 1024 * 1024) / chunkSizeBytes)));
}
