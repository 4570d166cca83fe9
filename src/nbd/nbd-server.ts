import * as net from 'node:net';
import { CofferError, type Logger, silentLogger } from '../shared/index.js';
import type { BlockDevice } from './block-device.js';
import * as P from './protocol.js';
import { SocketReader } from './socket-reader.js';

export interface NbdServerOptions {
  exportName?: string;
  description?: string;
  logger?: Logger;
  /** Most concurrent connections (default 16). */
  maxConnections?: number;
}

const META_BASE_ALLOCATION = 'base:allocation';
const BASE_ALLOCATION_ID = 1;
const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
const BLOCK_STATUS_MAX_EXTENTS = 8192;
const EINVAL = 22;
const EIO = 5;
const EPERM = 1;
const ENOSPC = 28;
const EOVERFLOW = 75;
const ENOTSUP = 95;

/**
 * NBD server for one export (fixed newstyle; NBD_OPT_GO/INFO/EXPORT_NAME/LIST; structured replies; block status with
 * base:allocation; several connections, each with its requests served concurrently). Clients are untrusted: every
 * length and offset is checked, option and request payloads are bounded, and a protocol violation closes only that
 * connection.
 */
export class NbdServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly logger: Logger;
  private readonly exportName: string;

  constructor(
    private readonly device: BlockDevice,
    private readonly opts: NbdServerOptions = {},
  ) {
    this.logger = opts.logger ?? silentLogger;
    this.exportName = opts.exportName ?? '';
    this.server = net.createServer((s) => this.accept(s));
    this.server.maxConnections = opts.maxConnections ?? 16;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new CofferError(
            'USAGE',
            `cannot listen on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'address in use' : e.message}`,
            { cause: e },
          ),
        ),
      );
      this.server.listen(port, host, () => {
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Listens on a Unix socket (private exports, e.g. for qemu-img). */
  listenPath(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (e) =>
        reject(new CofferError('IO', `cannot listen on ${path}: ${e.message}`, { cause: e })),
      );
      this.server.listen(path, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  get connections(): number {
    return this.sockets.size;
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const reader = new SocketReader(socket, 'nbd client');
    this.session(socket, reader).catch((e: unknown) => {
      if (!(e instanceof CofferError && e.details.nbd === 'disconnected'))
        this.logger.warn(`nbd: closing a connection: ${(e as Error).message}`);
      socket.destroy();
    });
  }

  private async session(socket: net.Socket, reader: SocketReader): Promise<void> {
    const greeting = Buffer.alloc(18);
    greeting.writeBigUInt64BE(P.NBDMAGIC, 0);
    greeting.writeBigUInt64BE(P.IHAVEOPT, 8);
    greeting.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    socket.write(greeting);
    const clientFlags = (await reader.read(4)).readUInt32BE(0);
    if (!(clientFlags & P.FLAG_C_FIXED_NEWSTYLE))
      throw new CofferError('SOURCE_UNREADABLE', 'client does not speak fixed newstyle');
    const noZeroes = (clientFlags & P.FLAG_C_NO_ZEROES) !== 0;
    let structured = false;
    let metaBase = false;

    for (;;) {
      const h = await reader.read(16);
      if (h.readBigUInt64BE(0) !== P.IHAVEOPT) throw new CofferError('SOURCE_UNREADABLE', 'bad option magic');
      const option = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > 64 * 1024) throw new CofferError('SOURCE_UNREADABLE', `option of ${len} bytes`);
      const data = await reader.read(len);
      const reply = (type: number, payload: Buffer = Buffer.alloc(0)) => {
        const r = Buffer.alloc(20);
        r.writeBigUInt64BE(P.OPT_REPLY_MAGIC, 0);
        r.writeUInt32BE(option, 8);
        r.writeUInt32BE(type >>> 0, 12);
        r.writeUInt32BE(payload.length, 16);
        socket.write(Buffer.concat([r, payload]));
      };
      const err = (type: number, msg: string) => reply(type, Buffer.from(msg));
      switch (option) {
        case 1: {
          // NBD_OPT_EXPORT_NAME: no reply header; send size + flags (+ zeroes) and enter transmission
          if (data.toString('utf8') !== this.exportName)
            throw new CofferError('SOURCE_UNREADABLE', 'unknown export requested');
          const b = Buffer.alloc(noZeroes ? 10 : 134);
          b.writeBigUInt64BE(BigInt(this.device.sizeBytes), 0);
          b.writeUInt16BE(this.transmissionFlags(), 8);
          socket.write(b);
          return this.transmission(socket, reader, structured, metaBase);
        }
        case P.OPT_ABORT:
          reply(P.REP_ACK);
          socket.end();
          return;
        case 3: {
          // NBD_OPT_LIST
          if (len !== 0) {
            err(P.REP_ERR_INVALID, 'LIST takes no data');
            break;
          }
          const name = Buffer.from(this.exportName);
          const desc = Buffer.alloc(4);
          desc.writeUInt32BE(name.length);
          reply(P.REP_SERVER, Buffer.concat([desc, name]));
          reply(P.REP_ACK);
          break;
        }
        case P.OPT_STARTTLS:
          err(P.REP_ERR_POLICY, 'TLS is not offered; use a local address or a tunnel');
          break;
        case P.OPT_STRUCTURED_REPLY:
          if (len !== 0) err(P.REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
          else {
            structured = true;
            reply(P.REP_ACK);
          }
          break;
        case P.OPT_LIST_META_CONTEXT:
        case P.OPT_SET_META_CONTEXT: {
          const parsed = parseMetaRequest(data);
          if (!parsed) {
            err(P.REP_ERR_INVALID, 'malformed meta context request');
            break;
          }
          if (option === P.OPT_SET_META_CONTEXT && !structured) {
            err(P.REP_ERR_INVALID, 'structured replies first');
            break;
          }
          if (parsed.exportName !== this.exportName) {
            err(P.REP_ERR_UNKNOWN, 'unknown export');
            break;
          }
          const wantBase =
            parsed.queries.length === 0
              ? option === P.OPT_LIST_META_CONTEXT
              : parsed.queries.some((q) => q === META_BASE_ALLOCATION || q === 'base:');
          if (wantBase) {
            const name = Buffer.from(META_BASE_ALLOCATION);
            const id = Buffer.alloc(4);
            id.writeUInt32BE(option === P.OPT_SET_META_CONTEXT ? BASE_ALLOCATION_ID : 0);
            reply(P.REP_META_CONTEXT, Buffer.concat([id, name]));
          }
          if (option === P.OPT_SET_META_CONTEXT) metaBase = wantBase;
          reply(P.REP_ACK);
          break;
        }
        case P.OPT_INFO:
        case P.OPT_GO: {
          if (data.length < 6) {
            err(P.REP_ERR_INVALID, 'short GO/INFO');
            break;
          }
          const nameLen = data.readUInt32BE(0);
          if (4 + nameLen + 2 > data.length) {
            err(P.REP_ERR_INVALID, 'malformed GO/INFO');
            break;
          }
          const name = data.toString('utf8', 4, 4 + nameLen);
          if (name !== this.exportName) {
            err(P.REP_ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
            break;
          }
          const info = Buffer.alloc(12);
          info.writeUInt16BE(P.INFO_EXPORT, 0);
          info.writeBigUInt64BE(BigInt(this.device.sizeBytes), 2);
          info.writeUInt16BE(this.transmissionFlags(), 10);
          reply(P.REP_INFO, info);
          const bs = Buffer.alloc(14);
          bs.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
          bs.writeUInt32BE(1, 2);
          bs.writeUInt32BE(4096, 6);
          bs.writeUInt32BE(MAX_REQUEST_BYTES, 10);
          reply(P.REP_INFO, bs);
          if (this.opts.description) {
            const d = Buffer.from(this.opts.description.slice(0, 1000));
            const t = Buffer.alloc(2);
            t.writeUInt16BE(P.INFO_DESCRIPTION);
            reply(P.REP_INFO, Buffer.concat([t, d]));
          }
          reply(P.REP_ACK);
          if (option === P.OPT_GO) return this.transmission(socket, reader, structured, metaBase);
          break;
        }
        default:
          err(P.REP_ERR_UNSUP, `option ${option} is not supported`);
      }
    }
  }

  private transmissionFlags(): number {
    let f = P.TFLAG_HAS_FLAGS | P.TFLAG_SEND_FLUSH | P.TFLAG_CAN_MULTI_CONN | P.TFLAG_SEND_DF | P.TFLAG_SEND_CACHE;
    if (!this.device.writable) f |= P.TFLAG_READ_ONLY;
    else f |= P.TFLAG_SEND_WRITE_ZEROES | P.TFLAG_SEND_TRIM | P.TFLAG_SEND_FUA;
    return f;
  }

  private async transmission(
    socket: net.Socket,
    reader: SocketReader,
    structured: boolean,
    metaBase: boolean,
  ): Promise<void> {
    const size = this.device.sizeBytes;
    const simple = (cookie: Buffer, error: number, data?: Buffer) => {
      const h = Buffer.alloc(16);
      h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
      h.writeUInt32BE(error, 4);
      cookie.copy(h, 8);
      socket.write(data && error === 0 ? Buffer.concat([h, data]) : h);
    };
    const chunk = (cookie: Buffer, flags: number, type: number, payload: Buffer) => {
      const h = Buffer.alloc(20);
      h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
      h.writeUInt16BE(flags, 4);
      h.writeUInt16BE(type, 6);
      cookie.copy(h, 8);
      h.writeUInt32BE(payload.length, 16);
      socket.write(Buffer.concat([h, payload]));
    };
    const fail = (cookie: Buffer, errno: number, message: string) => {
      if (!structured) return simple(cookie, errno);
      const m = Buffer.from(message.slice(0, 4096));
      const p = Buffer.alloc(6 + m.length);
      p.writeUInt32BE(errno, 0);
      p.writeUInt16BE(m.length, 4);
      m.copy(p, 6);
      chunk(cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, p);
    };
    const ok = (cookie: Buffer) =>
      structured ? chunk(cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, Buffer.alloc(0)) : simple(cookie, 0);
    let inflight = 0;
    let inflightBytes = 0;
    const waiters: (() => void)[] = [];
    for (;;) {
      const req = await reader.read(28);
      if (req.readUInt32BE(0) !== P.REQUEST_MAGIC) throw new CofferError('SOURCE_UNREADABLE', 'bad request magic');
      const flags = req.readUInt16BE(4);
      const type = req.readUInt16BE(6);
      const cookie = Buffer.from(req.subarray(8, 16));
      const offBig = req.readBigUInt64BE(16);
      const length = req.readUInt32BE(24);
      const offset = offBig > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offBig);
      const inRange = offset + length <= size;
      if (type === P.CMD_DISC) {
        socket.end();
        return;
      }
      let payload: Buffer | undefined;
      if (type === P.CMD_WRITE) {
        if (length > MAX_REQUEST_BYTES) throw new CofferError('SOURCE_UNREADABLE', `write of ${length} bytes`);
        payload = Buffer.from(await reader.read(length));
      }
      // Serve concurrently; replies are written whole, so they never interleave. At most 64 requests or 128 MiB of
      // reads in flight per connection: past that we stop reading requests until some are answered.
      const cost = type === P.CMD_READ ? Math.min(length, MAX_REQUEST_BYTES) : 0;
      while (inflight >= 64 || (inflightBytes + cost > 128 * 1024 * 1024 && inflight > 0))
        await new Promise<void>((res) => waiters.push(res));
      inflight++;
      inflightBytes += cost;
      void this.serve(type, flags, offset, length, inRange, payload, cookie, structured, metaBase, {
        simple,
        chunk,
        fail,
        ok,
      })
        .catch((e: unknown) => {
          this.logger.warn(`nbd: request ${type} at ${offset} (+${length}) failed: ${(e as Error).message}`);
          fail(cookie, EIO, (e as Error).message);
        })
        .finally(() => {
          inflight--;
          inflightBytes -= cost;
          waiters.shift()?.();
        });
    }
  }

  private async serve(
    type: number,
    flags: number,
    offset: number,
    length: number,
    inRange: boolean,
    payload: Buffer | undefined,
    cookie: Buffer,
    structured: boolean,
    metaBase: boolean,
    r: {
      simple: (c: Buffer, e: number, d?: Buffer) => void;
      chunk: (c: Buffer, f: number, t: number, p: Buffer) => void;
      fail: (c: Buffer, e: number, m: string) => void;
      ok: (c: Buffer) => void;
    },
  ): Promise<void> {
    const d = this.device;
    switch (type) {
      case P.CMD_READ: {
        if (!inRange) return r.fail(cookie, EINVAL, 'read past the end of the export');
        if (length > MAX_REQUEST_BYTES) return r.fail(cookie, EOVERFLOW, 'read larger than the maximum block size');
        if (length === 0) return r.ok(cookie);
        const data = await d.read(offset, length);
        if (!structured) return r.simple(cookie, 0, data);
        const p = Buffer.allocUnsafe(8 + data.length);
        p.writeBigUInt64BE(BigInt(offset), 0);
        data.copy(p, 8);
        return r.chunk(cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, p);
      }
      case P.CMD_WRITE:
        if (!d.writable || !d.write) return r.fail(cookie, EPERM, 'the export is read-only');
        if (!inRange) return r.fail(cookie, ENOSPC, 'write past the end of the export');
        await d.write(offset, payload!);
        if (flags & P.CMD_FLAG_FUA) await d.flush?.();
        return r.ok(cookie);
      case P.CMD_WRITE_ZEROES:
      case P.CMD_TRIM:
        if (!d.writable || !d.zero) return r.fail(cookie, EPERM, 'the export is read-only');
        if (!inRange) return r.fail(cookie, ENOSPC, 'past the end of the export');
        await d.zero(offset, length);
        return r.ok(cookie);
      case P.CMD_FLUSH:
        await d.flush?.();
        return r.ok(cookie);
      case P.CMD_CACHE:
        return inRange ? r.ok(cookie) : r.fail(cookie, EINVAL, 'past the end');
      case P.CMD_BLOCK_STATUS: {
        if (!structured || !metaBase) return r.fail(cookie, EINVAL, 'no meta context negotiated');
        if (!inRange || length === 0) return r.fail(cookie, EINVAL, 'block status outside the export');
        const extents = d.blockStatus ? await d.blockStatus(offset, length) : [{ length, flags: 0 }];
        const list = (flags & P.CMD_FLAG_REQ_ONE ? extents.slice(0, 1) : extents).slice(0, BLOCK_STATUS_MAX_EXTENTS);
        const p = Buffer.alloc(4 + 8 * list.length);
        p.writeUInt32BE(BASE_ALLOCATION_ID, 0);
        list.forEach((e, k) => {
          p.writeUInt32BE(Math.min(e.length, 0xffffffff), 4 + 8 * k);
          p.writeUInt32BE(e.flags, 8 + 8 * k);
        });
        return r.chunk(cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, p);
      }
      default:
        return r.fail(cookie, ENOTSUP, `command ${type} is not supported`);
    }
  }
}

function parseMetaRequest(data: Buffer): { exportName: string; queries: string[] } | undefined {
  if (data.length < 8) return undefined;
  const nameLen = data.readUInt32BE(0);
  let o = 4 + nameLen;
  if (o + 4 > data.length) return undefined;
  const exportName = data.toString('utf8', 4, 4 + nameLen);
  const n = data.readUInt32BE(o);
  o += 4;
  if (n > 1024) return undefined;
  const queries: string[] = [];
  for (let i = 0; i < n; i++) {
    if (o + 4 > data.length) return undefined;
    const l = data.readUInt32BE(o);
    o += 4;
    if (o + l > data.length) return undefined;
    queries.push(data.toString('utf8', o, o + l));
    o += l;
  }
  return { exportName, queries };
}
