// NFC import hooks of vcsim-coffer (test/fixtures/vcsim/nfc.go): the uploads it kept, and an injected upload failure.
import { vcRequest, type Vcsim } from './vcsim.js';

export interface NfcUpload {
  lease: string;
  name: string;
  fileName: string;
  /** the stored streamOptimized upload (local file) */
  streamPath: string;
  /** bytes received on the wire */
  bytes: number;
  grains: number;
  error?: string;
}

async function nfcHook(vc: Vcsim, path: string): Promise<Record<string, unknown>> {
  const r = await vcRequest(vc, 'POST', `/_coffer/${path}`);
  const body = JSON.parse(r.body.toString('utf8') || '{}') as Record<string, unknown>;
  if (r.status !== 200) throw new Error(`vcsim hook ${path}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

/** Every NFC upload so far, and each lease's end ("" while open, "complete", "abort"). */
export async function nfcUploads(vc: Vcsim): Promise<{ uploads: NfcUpload[]; leases: Record<string, string> }> {
  const b = await nfcHook(vc, 'nfc-uploads');
  return { uploads: (b['uploads'] as NfcUpload[] | null) ?? [], leases: (b['leases'] as Record<string, string>) ?? {} };
}

/** The next NFC upload is cut (connection closed without a reply) after afterBytes bytes. */
export function nfcFailNext(vc: Vcsim, afterBytes: number): Promise<Record<string, unknown>> {
  return nfcHook(vc, `nfc-fail-next?afterBytes=${afterBytes}`);
}

/**
 * The datastore fills up: NFC uploads may write freeBytes more bytes of disk data; the upload that does not fit fails
 * (HTTP 500) and its lease goes to state error with fault NoDiskSpace. One-shot; -1 lifts the limit.
 */
export function nfcDatastoreFull(vc: Vcsim, freeBytes: number): Promise<Record<string, unknown>> {
  return nfcHook(vc, `nfc-datastore-full?freeBytes=${freeBytes}`);
}
