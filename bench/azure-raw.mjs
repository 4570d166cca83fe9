#!/usr/bin/env node
// azure-raw.mjs upload|download FILE CONTAINER [IN_FLIGHT=16] [BLOB_MIB=1]: the Azure SDK alone, as the ceiling a
// backup/restore is measured against: FILE cut in BLOB_MIB pieces, each a block blob (Put Blob) named by its index,
// IN_FLIGHT requests at a time; download reads them all back (and checks the bytes against FILE). Credentials from
// AZURE_STORAGE_CONNECTION_STRING. Prints one JSON line: {op, seconds, mbPerS, requests, bytes, peakRssMiB}.
import { createRequire } from 'node:module';
import { openSync, readSync, fstatSync } from 'node:fs';
import { resolve } from 'node:path';

const require = createRequire(resolve(import.meta.dirname, '..', 'package.json'));
const { BlobServiceClient } = require('@azure/storage-blob');

const [op, file, containerName, inFlightArg, blobMibArg] = process.argv.slice(2);
const inFlight = Number(inFlightArg ?? 16);
const piece = Number(blobMibArg ?? 1) * 1024 * 1024;
if (!['upload', 'download'].includes(op) || !file || !containerName) {
  console.error('usage: azure-raw.mjs upload|download FILE CONTAINER [IN_FLIGHT] [BLOB_MIB]');
  process.exit(2);
}
const service = BlobServiceClient.fromConnectionString(process.env.AZURE_STORAGE_CONNECTION_STRING, {
  retryOptions: { maxTries: 4 },
});
const container = service.getContainerClient(containerName);
if (op === 'upload') await container.createIfNotExists();

const fd = openSync(file, 'r');
const size = fstatSync(fd).size;
const count = Math.ceil(size / piece);
const readPiece = (i) => {
  const len = Math.min(piece, size - i * piece);
  const b = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) got += readSync(fd, b, got, len - got, i * piece + got);
  return b;
};
let peak = process.memoryUsage().rss;
const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
let next = 0;
let bytes = 0;
const t0 = performance.now();
async function worker() {
  for (;;) {
    const i = next++;
    if (i >= count) return;
    const blob = container.getBlockBlobClient(`raw/${String(i).padStart(8, '0')}`);
    if (op === 'upload') {
      const b = readPiece(i);
      await blob.upload(b, b.length);
      bytes += b.length;
    } else {
      const b = await blob.downloadToBuffer();
      if (!b.equals(readPiece(i))) throw new Error(`blob ${i} differs from the file`);
      bytes += b.length;
    }
  }
}
await Promise.all(Array.from({ length: inFlight }, worker));
const seconds = (performance.now() - t0) / 1000;
clearInterval(sample);
console.log(
  JSON.stringify({
    op,
    seconds: +seconds.toFixed(2),
    mbPerS: +(bytes / 1e6 / seconds).toFixed(1),
    requests: count,
    bytes,
    inFlight,
    peakRssMiB: Math.round(peak / 1048576),
  }),
);
