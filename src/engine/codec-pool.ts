import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ChunkCodec, IdSet } from '../repository/index.js';
import { CofferError, type ErrorCode } from '../shared/index.js';
import { exclusive, type CodecParams, type CodecReply, type CodecRequest } from './codec-protocol.js';

type OkReply = CodecReply & { ok: true };
type Pending = { resolve: (r: OkReply) => void; reject: (e: unknown) => void };
type RequestBody =
  | { op: 'process'; seal: boolean }
  | { op: 'seal'; idHex: string }
  | { op: 'open'; idHex: string; checkId: boolean; into: ArrayBuffer | null };

export interface ProcessResult {
  /** null: an all-zero chunk. */
  id: Buffer | null;
  /** The id is in the known set (stored by the parent restore point). */
  known: boolean;
  /** The sealed blob, when sealing was asked for and the id is not known. */
  sealed: Buffer | undefined;
  /** The input buffer, handed back (reusable). */
  data: Buffer;
}

/**
 * Runs ChunkCodec work on worker threads so a backup or restore uses every core while the main thread does I/O.
 * With 0 workers it runs inline (tests, tiny jobs). Input buffers are transferred to the worker: after a call the
 * caller must not use the Buffer it passed; results hand it back.
 */
export class CodecPool {
  private readonly workers: { w: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly inline: ChunkCodec | undefined;
  private known: IdSet = IdSet.empty;
  private seq = 0;
  private failed: unknown;

  /**
   * `params` may be a promise: the workers start at once (loading their modules takes ~0.1 s) and receive the keys
   * when the repository is open. Calls made meanwhile are queued by the workers in order.
   */
  constructor(params: CodecParams | Promise<CodecParams>, workers = defaultWorkerCount()) {
    if (workers <= 0) {
      if (params instanceof Promise) throw new CofferError('INTERNAL', 'an inline pool needs its keys up front');
      this.inline = new ChunkCodec(
        { encKey: Buffer.from(params.encKey), idKey: Buffer.from(params.idKey) },
        params.zstdLevel,
        params.maxChunkBytes,
      );
      return;
    }
    const later = params instanceof Promise;
    if (later) {
      params.then(
        (p) => {
          for (const s of this.workers) s.w.postMessage({ op: 'init', params: p });
        },
        () => undefined,
      );
    }
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./codec-worker.js', import.meta.url), { workerData: later ? null : params });
      const slot = { w, busy: 0 };
      w.on('message', (r: CodecReply) => {
        slot.busy--;
        const p = this.pending.get(r.seq);
        this.pending.delete(r.seq);
        if (!p) return;
        if (r.ok) p.resolve(r);
        else p.reject(new CofferError(r.code as ErrorCode, r.message, { details: r.details ?? {} }));
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (this.pending.size > 0) this.fail(new CofferError('INTERNAL', `codec worker exited with code ${code}`));
      });
      this.workers.push(slot);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private fail(e: unknown): void {
    this.failed ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private post(slot: { w: Worker; busy: number }, msg: CodecRequest, transfer: ArrayBuffer[]): Promise<OkReply> {
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(msg.seq, { resolve, reject });
      slot.w.postMessage(msg, transfer);
    });
  }

  private call(body: RequestBody, input: Buffer, extra: ArrayBuffer[] = []): Promise<OkReply> {
    if (this.failed) return Promise.reject(this.failed);
    const data = exclusive(input);
    const ab = data.buffer as ArrayBuffer;
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    return this.post(slot, { ...body, seq: this.seq++, data: ab, length: data.length } as CodecRequest, [ab, ...extra]);
  }

  /**
   * Sets the ids known to be stored (e.g. the parent restore point's index), so `process` can skip sealing them.
   * Shared with the workers through one SharedArrayBuffer.
   */
  async setKnown(ids: IdSet): Promise<void> {
    this.known = ids;
    if (this.inline) return;
    const bytes = ids.bytes;
    const sab = bytes.length > 0 ? new SharedArrayBuffer(bytes.length) : null;
    if (sab) bytes.copy(Buffer.from(sab));
    if (sab) this.known = IdSet.fromSorted(Buffer.from(sab));
    await Promise.all(
      this.workers.map((slot) => this.post(slot, { op: 'known', seq: this.seq++, ids: sab, length: bytes.length }, [])),
    );
  }

  /**
   * Zero check + keyed hash; unless the id is known, also seals it when `seal` (speculatively, saving a round trip).
   */
  async process(data: Buffer, seal: boolean): Promise<ProcessResult> {
    if (this.inline) {
      const id = this.inline.hash(data);
      const known = id !== null && this.known.has(id);
      return { id, known, sealed: id && !known && seal ? this.inline.seal(data, id.toString('hex')) : undefined, data };
    }
    const len = data.length;
    const r = await this.call({ op: 'process', seal }, data);
    return {
      id: r.id ? Buffer.from(r.id) : null,
      known: r.known === true,
      sealed: r.data ? Buffer.from(r.data, 0, r.length) : undefined,
      data: Buffer.from(r.input!, 0, len),
    };
  }

  /** Compress + encrypt. Returns the blob and the input buffer back. */
  async seal(data: Buffer, idHex: string): Promise<{ sealed: Buffer; data: Buffer }> {
    if (this.inline) return { sealed: this.inline.seal(data, idHex), data };
    const len = data.length;
    const r = await this.call({ op: 'seal', idHex }, data);
    return { sealed: Buffer.from(r.data!, 0, r.length), data: Buffer.from(r.input!, 0, len) };
  }

  /**
   * Decrypt + decompress; with checkId also re-hash to the id (see ChunkCodec.open). `into`: a buffer the caller
   * gives up (it owns its whole ArrayBuffer) for the plaintext, so restore recycles a few buffers instead of
   * allocating one per chunk. The plaintext may live in it; `spare` returns it when it was not used.
   */
  async open(
    blob: Buffer,
    idHex: string,
    checkId = true,
    into?: Buffer,
  ): Promise<{ plain: Buffer; spare: Buffer | undefined }> {
    if (this.inline) {
      const plain = this.inline.open(blob, idHex, checkId, into);
      return { plain, spare: into && plain.buffer !== into.buffer ? into : undefined };
    }
    const intoAb =
      into && into.byteOffset === 0 && into.byteLength === into.buffer.byteLength ? (into.buffer as ArrayBuffer) : null;
    const r = await this.call({ op: 'open', idHex, checkId, into: intoAb }, blob, intoAb ? [intoAb] : []);
    return { plain: Buffer.from(r.data!, 0, r.length), spare: r.input ? Buffer.from(r.input) : undefined };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    this.workers.length = 0;
  }
}

export function defaultWorkerCount(): number {
  const env = process.env.COFFER_WORKERS;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  return Math.max(1, Math.min(8, availableParallelism()));
}
