/**
 * How many chunks a backup or restore keeps in flight: enough to keep every worker busy (3 each) and about 12 MiB
 * of data moving (small chunks need more of them to hide I/O latency), at most 64. Memory stays bounded by
 * roughly twice that many chunks whatever the disk size.
 *
 * On object storage (`objectStore`) every chunk is a request with a round trip: ~24 MiB in flight (24 requests of
 * 1 MiB; 4 MiB chunks: 6) keep ~400 MB/s moving across 60 ms of round trip, and the store's own adaptive limit
 * (storage/adaptive-limit.ts) lowers what the service sees when it throttles. Memory: a chunk in flight costs its
 * plaintext, its sealed blob and the HTTP body (~3-6 MiB at 1 MiB chunks, measured), so 24 keep a backup or restore
 * under 256 MiB; 48 measured 328 MiB (backup) and 425 MiB (restore) peak RSS.
 */
export function chunksInFlight(chunkSizeBytes: number, workers: number, objectStore = false): number {
  const bytes = (objectStore ? 24 : 12) * 1024 * 1024;
  return Math.min(64, Math.max(2, workers * 3, Math.floor(bytes / chunkSizeBytes)));
}

/**
 * Chunks a restore fetches ahead: as chunksInFlight, but on object storage ~16 MiB (a fetched chunk holds its body,
 * its sealed blob in the worker and its plaintext until written: 24 ahead measured 285-293 MiB peak RSS, over the
 * 256 MiB budget; the raw SDK's 16 in flight is the rate it is measured against).
 */
export function chunksAhead(chunkSizeBytes: number, workers: number, objectStore = false): number {
  if (!objectStore) return chunksInFlight(chunkSizeBytes, workers);
  const bytes = 16 * 1024 * 1024;
  return Math.min(64, Math.max(2, workers * 3, Math.floor(bytes / chunkSizeBytes)));
}
