/**
 * How many chunks a backup or restore keeps in flight: enough to keep every worker busy (3 each) and about 12 MiB
 * of data moving (small chunks need more of them to hide I/O latency), at most 64. Memory stays bounded by
 * roughly twice that many chunks whatever the disk size.
 *
 * On object storage (`objectStore`) every chunk is a request with a round trip: ~24 MiB in flight (24 requests of
 * 1 MiB; 4 MiB chunks: 6) keep ~400 MB/s moving across 60 ms of round trip, and the store's own adaptive limit
 * (storage/adaptive-limit.ts) lowers what the service sees when it throttles. Memory: a backup's chunk in flight costs
 * its plaintext and its sealed blob, both in recycled buffers (ADR 0030); 24 measured 229-247 MiB peak RSS for a
 * 1 GiB backup to Azurite (session 8; before the recycling 24 measured 258-338 MiB and 16 was the most that fit).
 */
export function chunksInFlight(chunkSizeBytes: number, workers: number, objectStore = false): number {
  const bytes = (objectStore ? 24 : 12) * 1024 * 1024;
  return Math.min(64, Math.max(2, workers * 3, Math.floor(bytes / chunkSizeBytes)));
}

/**
 * Chunks a restore fetches ahead: as chunksInFlight when the workers write what they open (`workersWrite`: a file or
 * a device), so that a chunk ahead holds only its sealed blob and the HTTP body's pieces (ADR 0030): 24 ahead measured
 * 217-245 MiB peak RSS for a 1 GiB restore from Azurite (session 8). To a stream the plaintext comes back to the main
 * thread (~5 MiB a chunk in all: 16 ahead measured 283-292 MiB, over the 256 MiB budget): ~12 MiB on object storage.
 */
export function chunksAhead(chunkSizeBytes: number, workers: number, objectStore = false, workersWrite = true): number {
  if (!objectStore || workersWrite) return chunksInFlight(chunkSizeBytes, workers, objectStore);
  return Math.min(64, Math.max(2, workers * 3, Math.floor((12 * 1024 * 1024) / chunkSizeBytes)));
}
