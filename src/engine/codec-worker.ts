import { parentPort, workerData } from 'node:worker_threads';
import { ChunkCodec } from '../repository/index.js';
import { CofferError } from '../shared/index.js';
import { exclusive, type CodecParams, type CodecReply, type CodecRequest } from './codec-protocol.js';

const params = workerData as CodecParams;
const codec = new ChunkCodec({ encKey: Buffer.from(params.encKey), idKey: Buffer.from(params.idKey) }, params.zstdLevel, params.maxChunkBytes);

parentPort!.on('message', (req: CodecRequest) => {
  let reply: CodecReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const input = Buffer.from(req.data, 0, req.length);
    if (req.op === 'hash') {
      const id = codec.hash(input);
      const idBuf = id ? exclusive(id) : null;
      reply = { seq: req.seq, ok: true, id: idBuf ? (idBuf.buffer as ArrayBuffer) : null, data: req.data, length: req.length };
      transfer.push(req.data);
      if (idBuf) transfer.push(idBuf.buffer as ArrayBuffer);
    } else {
      const out = exclusive(req.op === 'seal' ? codec.seal(input, req.idHex) : codec.open(input, req.idHex));
      reply = { seq: req.seq, ok: true, data: out.buffer as ArrayBuffer, length: out.length };
      transfer.push(out.buffer as ArrayBuffer);
    }
  } catch (e) {
    const ce = e instanceof CofferError ? e : new CofferError('INTERNAL', String((e as Error)?.message ?? e));
    reply = { seq: req.seq, ok: false, code: ce.code, message: ce.message, details: ce.details };
  }
  parentPort!.postMessage(reply, transfer);
});
