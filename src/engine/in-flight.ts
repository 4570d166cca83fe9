/**
 * How many chunks a backup or restore keeps in flight: enough to keep every worker busy (3 each) and about 12 MiB
 * of data moving (small chunks need more of them to hide I/O latency), at most 64. Memory stays bounded by
 * roughly twice that many chunks whatever the disk size.
 *
 * On object storage (`objectStore`) every chunk is a request with a round trip: ~48 MiB in flight (48 requests of
 * 1 MiB, still at most 64) keep a 1 GB/s link busy across 40 ms of round trip, and the store's own adaptive limit
 * (storage/adaptive-limit.ts) lowers what the service sees when it throttles. Memory: at most 64 chunks of plaintext
 * and their sealed blobs (~130 MiB at 1 MiB chunks), whatever the disk size or the latency.
 */
export function chunksInFlight(chunkSizeBytes: number, workers: number, objectStore = false): number {
  const bytes = (objectStore ? 48 : 12) * 1024 * 1024;
  return Math.min(64, Math.max(2, workers * 3, Math.floor(bytes / chunkSizeBytes)));
}
