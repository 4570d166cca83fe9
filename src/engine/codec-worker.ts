import { parentPort, workerData } from 'node:worker_threads';
import { type ChunkCodec, IdSet, closeTargetFile, newChunkFileScratch, restoreChunkFile } from '../repository/index.js';
import { CofferError } from '../shared/index.js';
import { codecOf, exclusive, type CodecParams, type CodecReply, type CodecRequest } from './codec-protocol.js';

// The keys come with the worker's start, or, for a worker started while they were being derived
// (CodecPool.startNow), in a `params` message before any request that needs them.
let keyed: ChunkCodec | undefined = workerData ? codecOf(workerData as CodecParams) : undefined;
const codecNow = (): ChunkCodec => {
  if (!keyed) throw new CofferError('INTERNAL', 'codec worker: a request came before the keys');
  return keyed;
};
let known: IdSet = IdSet.empty;
const fileScratch = newChunkFileScratch();

parentPort!.on('message', (req: CodecRequest) => {
  let reply: CodecReply;
  const transfer: ArrayBuffer[] = [];
  try {
    if (req.op === 'params') {
      keyed = codecOf(req.params);
      reply = { seq: req.seq, ok: true, length: 0 };
    } else if (req.op === 'known') {
      known = req.ids ? IdSet.fromSorted(Buffer.from(req.ids, 0, req.length)) : IdSet.empty;
      reply = { seq: req.seq, ok: true, length: 0 };
    } else if (req.op === 'closeTarget') {
      closeTargetFile(fileScratch, req.target, req.targetName);
      reply = { seq: req.seq, ok: true, length: 0 };
    } else if (req.op === 'restoreFile') {
      restoreChunkFile(codecNow(), req.req, fileScratch, req.data ? Buffer.from(req.data, 0, req.length) : undefined);
      reply = { seq: req.seq, ok: true, length: req.req.length };
    } else {
      const codec = codecNow();
      const input = Buffer.from(req.data, 0, req.length);
      if (req.op === 'process') {
        const id = codec.hash(input);
        reply = { seq: req.seq, ok: true, input: req.data, length: 0, id: null };
        if (id) {
          const idBuf = exclusive(id);
          reply.id = idBuf.buffer as ArrayBuffer;
          transfer.push(reply.id);
          reply.known = known.has(id);
          if (!reply.known && req.seal) {
            const into = req.into ? Buffer.from(req.into) : undefined;
            const got = codec.seal(input, id.toString('hex'), into);
            const sealed = into && got.buffer === into.buffer ? got : exclusive(got);
            reply.data = sealed.buffer as ArrayBuffer;
            reply.length = sealed.length;
            transfer.push(reply.data);
          }
        }
        if (req.into && reply.data !== req.into) {
          reply.spare = req.into;
          transfer.push(req.into);
        }
        transfer.push(req.data);
      } else if (req.op === 'open') {
        const into = req.into ? Buffer.from(req.into) : undefined;
        const plain = codec.open(input, req.idHex, req.checkId, into);
        if (into && plain.buffer === into.buffer) {
          reply = { seq: req.seq, ok: true, data: req.into!, length: plain.length };
          transfer.push(req.into!);
        } else {
          const out = exclusive(plain);
          reply = {
            seq: req.seq,
            ok: true,
            data: out.buffer as ArrayBuffer,
            length: out.length,
            ...(req.into ? { input: req.into } : {}),
          };
          transfer.push(reply.data!, ...(req.into ? [req.into] : []));
        }
      } else {
        const out = exclusive(codec.seal(input, req.idHex));
        reply = { seq: req.seq, ok: true, data: out.buffer as ArrayBuffer, length: out.length };
        transfer.push(reply.data!);
        if (req.op === 'seal') {
          reply.input = req.data;
          transfer.push(req.data);
        }
      }
    }
  } catch (e) {
    const ce = e instanceof CofferError ? e : new CofferError('INTERNAL', String((e as Error)?.message ?? e));
    reply = { seq: req.seq, ok: false, code: ce.code, message: ce.message, details: ce.details };
  }
  parentPort!.postMessage(reply, transfer);
});
