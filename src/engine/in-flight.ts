/**
 * How many chunks a backup or restore keeps in flight: enough to keep every worker busy (3 each) and about 12 MiB
 * of data moving (small chunks need more of them to hide I/O latency), at most 64. Memory stays bounded by
 * roughly twice that many chunks whatever the disk size.
 *
 * On object storage (`objectStore`) every chunk is a request with a round trip: ~16 MiB in flight (16 requests of
 * 1 MiB; 4 MiB chunks: 6) keep ~250 MB/s moving across 60 ms of round trip, and the store's own adaptive limit
 * (storage/adaptive-limit.ts) lowers what the service sees when it throttles. Memory: a chunk in flight costs its
 * plaintext, its sealed blob and the HTTP body (~3-6 MiB at 1 MiB chunks, measured), so 16 keep a backup under 256
 * MiB; 24 measured 258-338 MiB on a quiet machine (session 7), 48 measured 328 MiB (backup) and 425 MiB (restore).
 */
export function chunksInFlight(chunkSizeBytes: number, workers: number, objectStore = false): number {
  const bytes = (objectStore ? 24 : 12) * 1024 * 1024;
  return Math.min(64, Math.max(2, workers * 3, Math.floor(bytes / chunkSizeBytes)));
}

/**
 * Chunks a restore fetches ahead: as chunksInFlight. On object storage a fetched chunk held its body and the stream's
 * pieces until a collection, its sealed blob in the worker and its plaintext until written (~5 MiB each: 16 ahead
 * measured 283-292 MiB peak RSS, over the 256 MiB budget, session 7); since the workers write what they open (no
 * plaintext comes back), 12 ahead measured 217-221 MiB and 16 ahead EDIT.
 */
export function chunksAhead(chunkSizeBytes: number, workers: number, objectStore = false): number {
  return chunksInFlight(chunkSizeBytes, workers, objectStore);
}
