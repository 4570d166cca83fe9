import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ChunkCodec } from '../repository/index.js';
import { CofferError, type ErrorCode } from '../shared/index.js';
import { exclusive, type CodecParams, type CodecReply, type CodecRequest } from './codec-protocol.js';

type Pending = { resolve: (r: CodecReply & { ok: true }) => void; reject: (e: unknown) => void };

/**
 * Runs ChunkCodec work (hash, seal, open) on worker threads so a backup or restore uses every core while the
 * main thread does I/O. With 0 workers it runs inline (tests, tiny jobs). Input buffers are transferred to the
 * worker: after a call the caller must not use the Buffer it passed (use the one returned).
 */
export class CodecPool {
  private readonly workers: { w: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly inline: ChunkCodec | undefined;
  private seq = 0;
  private failed: unknown;

  constructor(params: CodecParams, workers = defaultWorkerCount()) {
    if (workers <= 0) {
      this.inline = new ChunkCodec({ encKey: Buffer.from(params.encKey), idKey: Buffer.from(params.idKey) }, params.zstdLevel, params.maxChunkBytes);
      return;
    }
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./codec-worker.js', import.meta.url), { workerData: params });
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

  private call(req: Omit<CodecRequest, 'seq' | 'data' | 'length'>, input: Buffer): Promise<CodecReply & { ok: true }> {
    if (this.failed) return Promise.reject(this.failed);
    const data = exclusive(input);
    const seq = this.seq++;
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      const ab = data.buffer as ArrayBuffer;
      slot.w.postMessage({ ...req, seq, data: ab, length: data.length } as CodecRequest, [ab]);
    });
  }

  /** Zero check + keyed hash. Returns the (same) data back and the id, or null for an all-zero chunk. */
  async hash(data: Buffer): Promise<{ id: Buffer | null; data: Buffer }> {
    if (this.inline) return { id: this.inline.hash(data), data };
    const r = await this.call({ op: 'hash' }, data);
    return { id: r.id ? Buffer.from(r.id) : null, data: Buffer.from(r.data, 0, r.length) };
  }

  async seal(data: Buffer, idHex: string): Promise<Buffer> {
    if (this.inline) return this.inline.seal(data, idHex);
    const r = await this.call({ op: 'seal', idHex } as Omit<CodecRequest, 'seq' | 'data' | 'length'>, data);
    return Buffer.from(r.data, 0, r.length);
  }

  async open(blob: Buffer, idHex: string): Promise<Buffer> {
    if (this.inline) return this.inline.open(blob, idHex);
    const r = await this.call({ op: 'open', idHex } as Omit<CodecRequest, 'seq' | 'data' | 'length'>, blob);
    return Buffer.from(r.data, 0, r.length);
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
