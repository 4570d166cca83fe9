import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ChunkCodec, type ChunkFileRestore, IdSet } from '../repository/index.js';
import { CofferError, type ErrorCode } from '../shared/index.js';
import { codecOf, exclusive, type CodecParams, type CodecReply, type CodecRequest } from './codec-protocol.js';

type OkReply = CodecReply & { ok: true };
type Pending = { resolve: (r: OkReply) => void; reject: (e: unknown) => void };
type RequestBody =
  | { op: 'process'; seal: boolean; into: ArrayBuffer | null }
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
  /** The `into` buffer, handed back when the seal did not use it (or there was no seal). */
  spare: Buffer | undefined;
}

/** Work (input bytes) a pool with workers does on the main thread before it starts them (see CodecPool). */
export const INLINE_START_BYTES = 8 * 1024 * 1024;

/**
 * Runs ChunkCodec work on worker threads so a backup or restore uses every core while the main thread does I/O.
 * With 0 workers it runs inline (tests, tiny jobs). Input buffers are transferred to the worker: after a call the
 * caller must not use the Buffer it passed; results hand it back.
 *
 * The workers start with the first call past `inlineStartBytes` of input (default 8 MiB): the work before runs on the
 * main thread. A worker costs ~0.15 s of CPU to start (its module graph, zstd, the keys): more than a small job's whole
 * codec work (an incremental backup with a few changed chunks, a restore of a small disk, `coffer files` reading a
 * directory), while a large job loses nothing measurable (8 MiB is ~40 ms of codec work).
 */
export class CodecPool {
  /** `keyed`: the worker has the keys (in its workerData, or a `params` message posted before anything else) */
  private readonly workers: { w: Worker; busy: number; keyed: boolean }[] = [];
  private readonly pending = new Map<number, Pending>();
  private inline: ChunkCodec | undefined;
  /** workers <= 0: inline for good */
  private readonly inlineOnly: boolean;
  private inlineLeft: number;
  private params: CodecParams | undefined;
  private readonly paramsReady: Promise<CodecParams>;
  private known: IdSet = IdSet.empty;
  private seq = 0;
  private failed: unknown;
  private closing = false;

  /**
   * `params` may be a promise (the keys are still being derived): calls made meanwhile wait for it.
   */
  constructor(
    params: CodecParams | Promise<CodecParams>,
    private readonly count = defaultWorkerCount(),
    inlineStartBytes = INLINE_START_BYTES,
  ) {
    this.inlineOnly = count <= 0;
    this.inlineLeft = this.inlineOnly ? Number.POSITIVE_INFINITY : inlineStartBytes;
    if (params instanceof Promise) {
      this.paramsReady = params.then((p) => {
        this.params = p;
        for (const slot of this.workers) this.giveKeys(slot); // workers started before the keys (startNow)
        return p;
      });
      this.paramsReady.catch(() => undefined);
    } else {
      this.params = params;
      this.paramsReady = Promise.resolve(params);
    }
    if (this.inlineOnly && this.params) this.inline = codecOf(this.params);
    else if (inlineStartBytes <= 0 && this.params) this.startWorkers(this.params);
  }

  /** The inline codec while the job is small; undefined once the workers run (or must: past the inline budget). */
  private async inlineFor(bytes: number): Promise<ChunkCodec | undefined> {
    if (this.inlineOnly) return (this.inline ??= codecOf(this.params ?? (await this.paramsReady)));
    if (this.workers.length > 0) {
      // started before the keys (startNow): nothing goes to a worker before them
      if (!this.params) await this.paramsReady;
      return undefined;
    }
    const params = this.params ?? (await this.paramsReady);
    if (this.workers.length > 0) return undefined;
    if (this.inlineLeft >= bytes) {
      this.inlineLeft -= bytes;
      this.inline ??= codecOf(params);
      return this.inline;
    }
    this.startWorkers(params);
    return undefined;
  }

  /**
   * Starts the workers now, before the job crosses the inline budget, and before the keys are derived if need be (they
   * follow in a message): for a job known to be large, so that the workers load while scrypt runs and the repository
   * opens instead of after the first 8 MiB (~0.1-0.2 s of a disk restore). No-op when inline-only or started.
   */
  startNow(): void {
    if (this.inlineOnly || this.workers.length > 0 || this.closing || this.failed) return;
    this.startWorkers(this.params);
  }

  /** The job will hand the pool at least `bytes` of input: starts the workers at once when that passes the budget. */
  expect(bytes: number): void {
    if (bytes > this.inlineLeft) this.startNow();
  }

  /** posts the keys to a worker started without them, once they are known (before anything that needs them) */
  private giveKeys(slot: { w: Worker; busy: number; keyed: boolean }): void {
    if (slot.keyed || !this.params || this.closing) return;
    slot.keyed = true;
    this.post(slot, { op: 'params', seq: this.seq++, params: this.params }, []).catch(() => undefined);
  }

  private startWorkers(params: CodecParams | undefined): void {
    this.inline = undefined;
    this.inlineLeft = 0;
    const sab = this.knownShared();
    for (let i = 0; i < this.count; i++) {
      const w = new Worker(new URL('./codec-worker.js', import.meta.url), { workerData: params ?? null });
      const slot = { w, busy: 0, keyed: params !== undefined };
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
        // terminate() by close() or fail() exits with code 1: not a failure. Any other exit is one, even of an idle
        // worker (started early, it may wait through scrypt and a password prompt): later calls must not hang on it.
        if (!this.closing) this.fail(new CofferError('INTERNAL', `codec worker exited with code ${code}`));
      });
      this.workers.push(slot);
      // the known ids set before the workers started: sent first (a worker handles its messages in order)
      // (nobody awaits this reply: a failure reaches the calls that follow it)
      if (sab)
        this.post(slot, { op: 'known', seq: this.seq++, ids: sab, length: sab.byteLength }, []).catch(() => undefined);
    }
  }

  /** the known ids in a SharedArrayBuffer for the workers (and this.known on the same memory); null when empty */
  private knownShared(): SharedArrayBuffer | null {
    const bytes = this.known.bytes;
    if (bytes.length === 0) return null;
    const sab = new SharedArrayBuffer(bytes.length);
    bytes.copy(Buffer.from(sab));
    this.known = IdSet.fromSorted(Buffer.from(sab));
    return sab;
  }

  /** worker threads running now (0 until the job outgrows the inline budget) */
  get running(): number {
    return this.workers.length;
  }

  /** the worker threads it runs on (they start when the job outgrows the inline budget); 0: inline for good */
  get size(): number {
    return this.inlineOnly ? 0 : this.count;
  }

  private fail(e: unknown): void {
    this.failed ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    // the others stop too: none may go on writing a restore's target after its failure was reported
    this.closing = true;
    for (const s of this.workers) s.w.terminate().catch(() => undefined);
  }

  private post(
    slot: { w: Worker; busy: number; keyed: boolean },
    msg: CodecRequest,
    transfer: ArrayBuffer[],
  ): Promise<OkReply> {
    if (msg.op !== 'params') this.giveKeys(slot);
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
    if (this.workers.length === 0) return; // inline, or workers not started yet (they get it when they start)
    const sab = this.knownShared();
    const bytes = this.known.bytes;
    await Promise.all(
      this.workers.map((slot) => this.post(slot, { op: 'known', seq: this.seq++, ids: sab, length: bytes.length }, [])),
    );
  }

  /**
   * Zero check + keyed hash; unless the id is known, also seals it when `seal` (speculatively, saving a round trip).
   * `into`: a buffer the caller gives up (it owns its whole ArrayBuffer, at least a sealed chunk's size) to seal into,
   * so a backup recycles its sealed buffers instead of allocating one per chunk; `spare` returns it when unused.
   */
  async process(data: Buffer, seal: boolean, into?: Buffer): Promise<ProcessResult> {
    const inline = await this.inlineFor(data.length);
    if (inline) {
      const id = inline.hash(data);
      const known = id !== null && this.known.has(id);
      const sealed = id && !known && seal ? inline.seal(data, id.toString('hex'), into) : undefined;
      return { id, known, sealed, data, spare: into && sealed?.buffer !== into.buffer ? into : undefined };
    }
    const len = data.length;
    const intoAb =
      into && into.byteOffset === 0 && into.byteLength === into.buffer.byteLength ? (into.buffer as ArrayBuffer) : null;
    const r = await this.call({ op: 'process', seal, into: intoAb }, data, intoAb ? [intoAb] : []);
    return {
      id: r.id ? Buffer.from(r.id) : null,
      known: r.known === true,
      sealed: r.data ? Buffer.from(r.data, 0, r.length) : undefined,
      data: Buffer.from(r.input!, 0, len),
      spare: r.spare ? Buffer.from(r.spare) : undefined,
    };
  }

  /** Compress + encrypt. Returns the blob and the input buffer back. */
  async seal(data: Buffer, idHex: string): Promise<{ sealed: Buffer; data: Buffer }> {
    const inline = await this.inlineFor(data.length);
    if (inline) return { sealed: inline.seal(data, idHex), data };
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
    const inline = await this.inlineFor(blob.length);
    if (inline) {
      const plain = inline.open(blob, idHex, checkId, into);
      return { plain, spare: into && plain.buffer !== into.buffer ? into : undefined };
    }
    const intoAb =
      into && into.byteOffset === 0 && into.byteLength === into.buffer.byteLength ? (into.buffer as ArrayBuffer) : null;
    const r = await this.call({ op: 'open', idHex, checkId, into: intoAb }, blob, intoAb ? [intoAb] : []);
    return { plain: Buffer.from(r.data!, 0, r.length), spare: r.input ? Buffer.from(r.input) : undefined };
  }

  /**
   * One chunk of a restore opened and written by a worker, read there from `req.file` or given as `sealed` (then
   * transferred: the caller must not use it after). False while the pool runs inline (file I/O would block the event
   * loop) and nothing was taken: the caller then opens and writes it the usual way.
   */
  async restoreFile(req: ChunkFileRestore, sealed?: Buffer): Promise<boolean> {
    // still inline: the caller's own open charges the inline budget (not charged twice here)
    if (this.inlineOnly || (this.workers.length === 0 && this.inlineLeft >= req.length)) return false;
    if (await this.inlineFor(req.length)) return false;
    if (this.failed) throw this.failed;
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const data = sealed ? exclusive(sealed) : undefined;
    const ab = data ? (data.buffer as ArrayBuffer) : null;
    await this.post(
      slot,
      { op: 'restoreFile', seq: this.seq++, req, data: ab, length: data?.length ?? 0 },
      ab ? [ab] : [],
    );
    return true;
  }

  /**
   * The end of a restore that used restoreFile: every worker closes its descriptor of `target` (they keep one open
   * for the whole restore). Call it once every restoreFile call has settled, before the target is closed or removed.
   * Rejects with the first deferred write error a worker's close reports (STORAGE_FULL, TARGET_UNWRITABLE).
   */
  async closeTarget(target: string, targetName: string): Promise<void> {
    if (this.failed || this.workers.length === 0) return;
    const closes = this.workers.map((slot) =>
      this.post(slot, { op: 'closeTarget', seq: this.seq++, target, targetName }, []),
    );
    const results = await Promise.allSettled(closes);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((s) => s.w.terminate()));
    this.workers.length = 0;
    // calls still waiting (a caller that did not await them) fail instead of hanging
    if (this.pending.size > 0) this.fail(new CofferError('INTERNAL', 'codec pool closed with work pending'));
  }
}

export function defaultWorkerCount(): number {
  const env = process.env.COFFER_WORKERS;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  return Math.max(1, Math.min(8, availableParallelism()));
}
