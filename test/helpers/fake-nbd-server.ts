import { createServer, type Server, type Socket } from 'node:net';

/**
 * A fake NBD server (test double) on 127.0.0.1. Real servers (qemu-nbd, nbdkit) are well behaved: they cannot be
 * made to send a bad magic, a reply for a cookie nobody asked for, chunks outside or beyond a request, a short read,
 * or to stop answering without closing. This double speaks just enough fixed-newstyle NBD (greeting, STRUCTURED_REPLY,
 * SET_META_CONTEXT base:allocation, GO with NBD_INFO_EXPORT; READ and BLOCK_STATUS with structured replies) and lets
 * each test replace one step with a misbehaviour.
 */

// The protocol's constants come from the client's own table (one source of truth); only what a client never sends
// or expects is defined here.
export {
  NBDMAGIC,
  IHAVEOPT,
  OPT_REPLY_MAGIC,
  REQUEST_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  OPT_ABORT,
  OPT_GO,
  OPT_STRUCTURED_REPLY,
  OPT_SET_META_CONTEXT,
  REP_ACK,
  REP_INFO,
  REP_META_CONTEXT,
  REP_ERR_UNSUP,
  CMD_READ,
  CMD_DISC,
  CMD_BLOCK_STATUS,
  REPLY_FLAG_DONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_OFFSET_HOLE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_ERROR,
} from '../../src/nbd/protocol.js';
import {
  NBDMAGIC,
  IHAVEOPT,
  OPT_REPLY_MAGIC,
  REQUEST_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  OPT_ABORT,
  OPT_GO,
  OPT_STRUCTURED_REPLY,
  OPT_SET_META_CONTEXT,
  REP_ACK,
  REP_INFO,
  REP_META_CONTEXT,
  REP_ERR_UNSUP,
  CMD_READ,
  CMD_DISC,
  CMD_BLOCK_STATUS,
  REPLY_FLAG_DONE,
  REPLY_TYPE_OFFSET_DATA,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_ERROR,
  TFLAG_HAS_FLAGS,
  TFLAG_READ_ONLY,
  TFLAG_SEND_DF,
} from '../../src/nbd/protocol.js';
/** The old-style handshake's magic (a client never negotiates it; Coffer must refuse it). */
export const OLDSTYLE_MAGIC = 0x00420281861253n;

const BASE_ALLOCATION_ID = 1;

export interface NbdRequest {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

export interface FakeConnection {
  socket: Socket;
  /** Writes one structured reply chunk. */
  chunk(flags: number, type: number, cookie: bigint, payload: Buffer, opts?: { magic?: number; length?: number }): void;
  /** The default answer to a READ: one OFFSET_DATA chunk with DONE. */
  defaultRead(req: NbdRequest): void;
  /** The default answer to BLOCK_STATUS: one extent (allocated data) covering the request. */
  defaultBlockStatus(req: NbdRequest): void;
  /** Export bytes [offset, offset+length). */
  data(offset: number, length: number): Buffer;
}

export interface FakeNbdOptions {
  /** Export size in bytes (default 4 MiB). */
  size?: bigint;
  /** Replaces the 18-byte greeting. */
  greeting?: Buffer;
  /** Changes an option reply before it is sent (return the bytes to send). */
  optionReply?: (option: number, reply: Buffer, index: number) => Buffer;
  /** Handles a READ request instead of the default; `n` counts READs on this server (all connections). */
  onRead?: (req: NbdRequest, c: FakeConnection, n: number) => void;
  /** Handles a BLOCK_STATUS request instead of the default. */
  onBlockStatus?: (req: NbdRequest, c: FakeConnection, n: number) => void;
}

export interface FakeNbdServer {
  port: number;
  uri: string;
  /** Connections accepted so far. */
  readonly connections: number;
  readonly reads: number;
  close(): Promise<void>;
}

/** Deterministic export contents: every 8-byte word holds its own offset (like nbdkit's pattern plugin). */
export function patternBytes(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  const first = Math.floor(offset / 8) * 8;
  const tmp = Buffer.alloc(8);
  for (let o = first; o < offset + length; o += 8) {
    tmp.writeBigUInt64BE(BigInt(o));
    for (let i = 0; i < 8; i++) {
      const at = o + i - offset;
      if (at >= 0 && at < length) b[at] = tmp[i]!;
    }
  }
  return b;
}

function optReply(option: number, type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

export async function startFakeNbd(opts: FakeNbdOptions = {}): Promise<FakeNbdServer> {
  const size = opts.size ?? 4n * 1024n * 1024n;
  let connections = 0;
  let reads = 0;
  let blockStatusCount = 0;
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let phase: 'clientflags' | 'options' | 'transmission' = 'clientflags';
    let replies = 0;
    const send = (b: Buffer) => {
      if (!socket.destroyed) socket.write(b);
    };
    const sendOpt = (option: number, type: number, data: Buffer) => {
      const r = optReply(option, type, data);
      send(opts.optionReply ? opts.optionReply(option, r, replies) : r);
      replies++;
    };
    const conn: FakeConnection = {
      socket,
      data: patternBytes,
      chunk(flags, type, cookie, payload, o = {}) {
        const h = Buffer.alloc(20);
        h.writeUInt32BE(o.magic ?? STRUCTURED_REPLY_MAGIC, 0);
        h.writeUInt16BE(flags, 4);
        h.writeUInt16BE(type, 6);
        h.writeBigUInt64BE(cookie, 8);
        h.writeUInt32BE(o.length ?? payload.length, 16);
        send(Buffer.concat([h, payload]));
      },
      defaultRead(req) {
        const p = Buffer.alloc(8);
        p.writeBigUInt64BE(BigInt(req.offset));
        conn.chunk(
          REPLY_FLAG_DONE,
          REPLY_TYPE_OFFSET_DATA,
          req.cookie,
          Buffer.concat([p, patternBytes(req.offset, req.length)]),
        );
      },
      defaultBlockStatus(req) {
        const p = Buffer.alloc(12);
        p.writeUInt32BE(BASE_ALLOCATION_ID, 0);
        p.writeUInt32BE(req.length, 4);
        p.writeUInt32BE(0, 8);
        conn.chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, req.cookie, p);
      },
    };

    const greeting = Buffer.alloc(18);
    greeting.writeBigUInt64BE(NBDMAGIC, 0);
    greeting.writeBigUInt64BE(IHAVEOPT, 8);
    greeting.writeUInt16BE(1 | 2, 16); // FIXED_NEWSTYLE | NO_ZEROES
    send(opts.greeting ?? greeting);

    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'clientflags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (buf.length < 16) return;
          const len = buf.readUInt32BE(12);
          if (buf.length < 16 + len) return;
          const option = buf.readUInt32BE(8);
          const data = buf.subarray(16, 16 + len);
          buf = buf.subarray(16 + len);
          if (option === OPT_STRUCTURED_REPLY) sendOpt(option, REP_ACK, Buffer.alloc(0));
          else if (option === OPT_SET_META_CONTEXT) {
            const nameLen = data.readUInt32BE(0);
            let at = 4 + nameLen;
            const n = data.readUInt32BE(at);
            at += 4;
            for (let i = 0; i < n; i++) {
              const ql = data.readUInt32BE(at);
              const q = data.toString('utf8', at + 4, at + 4 + ql);
              at += 4 + ql;
              if (q === 'base:allocation') {
                const id = Buffer.alloc(4);
                id.writeUInt32BE(BASE_ALLOCATION_ID);
                sendOpt(option, REP_META_CONTEXT, Buffer.concat([id, Buffer.from(q)]));
              }
            }
            sendOpt(option, REP_ACK, Buffer.alloc(0));
          } else if (option === OPT_GO) {
            const info = Buffer.alloc(12);
            info.writeUInt16BE(0, 0); // NBD_INFO_EXPORT
            info.writeBigUInt64BE(size, 2);
            info.writeUInt16BE(TFLAG_HAS_FLAGS | TFLAG_READ_ONLY | TFLAG_SEND_DF, 10);
            sendOpt(option, REP_INFO, info);
            sendOpt(option, REP_ACK, Buffer.alloc(0));
            phase = 'transmission';
          } else if (option === OPT_ABORT) {
            sendOpt(option, REP_ACK, Buffer.alloc(0));
            socket.end();
            return;
          } else sendOpt(option, REP_ERR_UNSUP, Buffer.alloc(0));
        } else {
          if (buf.length < 28) return;
          if (buf.readUInt32BE(0) !== REQUEST_MAGIC) {
            socket.destroy();
            return;
          }
          const req: NbdRequest = {
            flags: buf.readUInt16BE(4),
            type: buf.readUInt16BE(6),
            cookie: buf.readBigUInt64BE(8),
            offset: Number(buf.readBigUInt64BE(16)),
            length: buf.readUInt32BE(24),
          };
          buf = buf.subarray(28);
          if (req.type === CMD_DISC) {
            socket.end();
            return;
          }
          if (req.type === CMD_READ) {
            const n = reads++;
            if (opts.onRead) opts.onRead(req, conn, n);
            else conn.defaultRead(req);
          } else if (req.type === CMD_BLOCK_STATUS) {
            const n = blockStatusCount++;
            if (opts.onBlockStatus) opts.onBlockStatus(req, conn, n);
            else conn.defaultBlockStatus(req);
          } else {
            const p = Buffer.alloc(6);
            p.writeUInt32BE(22, 0); // EINVAL
            conn.chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, p);
          }
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    uri: `nbd://127.0.0.1:${port}/`,
    get connections() {
      return connections;
    },
    get reads() {
      return reads;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
