import * as net from 'node:net';
import * as tls from 'node:tls';
import { CofferError, type Op } from '../shared/index.js';
import * as P from './protocol.js';
import { SocketReader, disconnected, protocolError } from './socket-reader.js';

export type NbdAddress = { host: string; port: number } | { path: string };

export interface NbdConnectOptions extends Op {
  exportName?: string;
  /** Meta contexts to negotiate, e.g. 'base:allocation', 'qemu:dirty-bitmap:b0'. */
  metaContexts?: string[];
  /** Per-request and handshake timeout (default 30 s). */
  timeoutMs?: number;
  /** STARTTLS: null for plain NBD. */
  tls?: tls.ConnectionOptions | null;
}

export interface Extent {
  offset: number;
  length: number;
  flags: number;
}

interface Pending {
  cmd: number;
  offset: number;
  length: number;
  into?: Buffer;
  covered: number;
  /** Byte ranges of the request already answered, [start, end) relative to the request: overlaps are violations. */
  ranges?: [number, number][];
  extents?: Map<number, Extent[]>;
  error?: CofferError;
  timer: NodeJS.Timeout;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * NBD client (fixed newstyle, NBD_OPT_GO, structured replies, block status with meta contexts, optional STARTTLS).
 * Several requests may be in flight; replies are matched by cookie. Anything a server sends that breaks the
 * protocol (bad magic, unknown cookie, a chunk outside the request, oversized replies) fails every pending request
 * with SOURCE_UNREADABLE and closes the connection; timeouts do the same. Nothing a server sends makes us allocate
 * more than the request length or MAX_* bytes.
 */
export class NbdClient {
  readonly sizeBytes: number;
  readonly transmissionFlags: number;
  readonly structured: boolean;
  readonly contexts: ReadonlyMap<string, number>;
  readonly maxBlockBytes: number;

  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly reader: SocketReader,
    private readonly timeoutMs: number,
    readonly description: string,
    info: { size: number; flags: number; structured: boolean; contexts: Map<string, number>; maxBlock: number },
  ) {
    this.sizeBytes = info.size;
    this.transmissionFlags = info.flags;
    this.structured = info.structured;
    this.contexts = info.contexts;
    this.maxBlockBytes = info.maxBlock;
    void this.replyLoop();
  }

  static async connect(address: NbdAddress, opts: NbdConnectOptions = {}): Promise<NbdClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const description = 'path' in address ? `nbd+unix://${address.path}` : `nbd://${address.host}:${address.port}`;
    let socket = await openSocket(address, timeoutMs, description, opts.signal);
    let reader = new SocketReader(socket, description);
    const timer = setTimeout(() => {
      reader.fail(
        new CofferError('SOURCE_UNREADABLE', `${description}: handshake timed out after ${timeoutMs} ms`, {
          details: { nbd: 'timeout', retryable: true },
        }),
      );
      socket.destroy();
    }, timeoutMs);
    const onAbort = () => {
      reader.fail(new CofferError('CANCELLED', 'cancelled'));
      socket.destroy();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // Server greeting
      const greeting = await reader.read(18);
      if (greeting.readBigUInt64BE(0) !== P.NBDMAGIC)
        throw protocolError(`${description} is not an NBD server (bad greeting magic)`);
      const magic2 = greeting.readBigUInt64BE(8);
      if (magic2 !== P.IHAVEOPT)
        throw protocolError(
          `${description}: old-style or unknown NBD handshake (magic ${magic2.toString(16)}); newstyle is required`,
        );
      const serverFlags = greeting.readUInt16BE(16);
      if (!(serverFlags & P.FLAG_FIXED_NEWSTYLE))
        throw protocolError(`${description}: server does not support fixed newstyle`);
      const noZeroes = (serverFlags & P.FLAG_NO_ZEROES) !== 0;
      socket.write(u32(P.FLAG_C_FIXED_NEWSTYLE | (noZeroes ? P.FLAG_C_NO_ZEROES : 0)));
      const opt = (option: number, data: Buffer) => sendOption(socket, option, data);
      const reply = () => readOptionReply(reader, description);

      if (opts.tls) {
        opt(P.OPT_STARTTLS, Buffer.alloc(0));
        const r = await reply();
        if (r.type !== P.REP_ACK) throw optionFailed(description, 'STARTTLS', r);
        // the certificate is checked against the address we dialled (an IP in its subjectAltName, or the host name)
        const host = 'host' in address ? address.host : 'localhost';
        socket = await upgradeTls(
          socket,
          { ...opts.tls, host, ...(net.isIP(host) ? {} : { servername: host }) },
          timeoutMs,
          description,
        );
        reader = new SocketReader(socket, description);
      }

      // Structured replies
      opt(P.OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      let r = await reply();
      if (r.type === P.REP_ERR_TLS_REQD) throw optionFailed(description, 'STRUCTURED_REPLY', r);
      const structured = r.type === P.REP_ACK;
      if (!structured && !(r.type & P.REP_FLAG_ERROR))
        throw protocolError(`${description}: unexpected reply ${r.type} to STRUCTURED_REPLY`);

      const exportName = Buffer.from(opts.exportName ?? '', 'utf8');
      if (exportName.length > 4096) throw new CofferError('USAGE', 'NBD export name longer than 4096 bytes');
      const contexts = new Map<string, number>();
      const wanted = opts.metaContexts ?? [];
      if (wanted.length > 0) {
        if (!structured)
          throw new CofferError(
            'SOURCE_UNREADABLE',
            `${description}: server lacks structured replies, so block status (${wanted.join(', ')}) is unavailable`,
          );
        const queries = wanted.map((q) => Buffer.from(q, 'utf8'));
        opt(
          P.OPT_SET_META_CONTEXT,
          Buffer.concat([
            u32(exportName.length),
            exportName,
            u32(queries.length),
            ...queries.flatMap((q) => [u32(q.length), q]),
          ]),
        );
        for (;;) {
          r = await reply();
          if (r.type === P.REP_ACK) break;
          if (r.type === P.REP_META_CONTEXT) {
            if (r.data.length < 4) throw protocolError('short META_CONTEXT reply');
            contexts.set(r.data.toString('utf8', 4), r.data.readUInt32BE(0));
            continue;
          }
          throw optionFailed(description, 'SET_META_CONTEXT', r);
        }
      }

      // GO
      opt(P.OPT_GO, Buffer.concat([u32(exportName.length), exportName, u16(1), u16(P.INFO_BLOCK_SIZE)]));
      let size = -1;
      let flags = 0;
      let maxBlock = P.MAX_READ_BYTES;
      for (;;) {
        r = await reply();
        if (r.type === P.REP_ACK) break;
        if (r.type === P.REP_INFO) {
          if (r.data.length < 2) throw protocolError('short INFO reply');
          const info = r.data.readUInt16BE(0);
          if (info === P.INFO_EXPORT) {
            if (r.data.length !== 12) throw protocolError('bad NBD_INFO_EXPORT length');
            const big = r.data.readBigUInt64BE(2);
            if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError(`absurd export size ${big}`);
            size = Number(big);
            flags = r.data.readUInt16BE(10);
          } else if (info === P.INFO_BLOCK_SIZE && r.data.length === 14) {
            const max = r.data.readUInt32BE(10);
            if (max >= 512) maxBlock = Math.min(maxBlock, max);
          }
          continue;
        }
        if (r.type === P.REP_ERR_UNKNOWN)
          throw new CofferError(
            'SOURCE_UNREADABLE',
            `${description}: no export named ${JSON.stringify(opts.exportName ?? '')}${
              r.message ? ` (${r.message})` : ''
            }`,
            { details: { nbd: 'server-error', retryable: false } },
          );
        throw optionFailed(description, 'GO', r);
      }
      if (size < 0) throw protocolError(`${description}: GO succeeded without NBD_INFO_EXPORT`);
      for (const w of wanted) {
        if (!contexts.has(w)) {
          throw new CofferError(
            'SOURCE_UNREADABLE',
            `${description}: the server does not offer meta ` +
              `context ${w}${w.startsWith('qemu:dirty-bitmap:') ? ' (no such dirty bitmap on this export?)' : ''}`,
            { details: { nbd: 'server-error', retryable: false, context: w } },
          );
        }
      }
      clearTimeout(timer);
      return new NbdClient(socket, reader, timeoutMs, description, { size, flags, structured, contexts, maxBlock });
    } catch (e) {
      clearTimeout(timer);
      socket.destroy();
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  get readOnly(): boolean {
    return (this.transmissionFlags & P.TFLAG_READ_ONLY) !== 0;
  }

  /** Reads exactly length bytes at offset into `into` (split into requests of at most maxBlockBytes). */
  async read(offset: number, length: number, into: Buffer, op?: Op): Promise<void> {
    this.checkRange(offset, length);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; ) {
      const n = Math.min(this.maxBlockBytes, length - done);
      parts.push(this.request(P.CMD_READ, offset + done, n, { into: into.subarray(done, done + n) }, op));
      done += n;
    }
    await Promise.all(parts);
  }

  /**
   * Writes data at offset (split into requests of at most maxBlockBytes), each acknowledged by the server. A read-only
   * export is refused before anything is sent. Durable only after flush().
   */
  async write(offset: number, data: Buffer, op?: Op): Promise<void> {
    if (this.readOnly) throw new CofferError('TARGET_UNWRITABLE', `${this.description}: the export is read-only`);
    this.checkRange(offset, data.length);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < data.length; ) {
      const n = Math.min(this.maxBlockBytes, data.length - done);
      parts.push(this.request(P.CMD_WRITE, offset + done, n, { payload: data.subarray(done, done + n) }, op));
      done += n;
    }
    await Promise.all(parts);
  }

  /** NBD_CMD_FLUSH: everything written so far is on stable storage (when the server says it can flush). */
  async flush(op?: Op): Promise<void> {
    if ((this.transmissionFlags & P.TFLAG_SEND_FLUSH) === 0) return;
    await this.request(P.CMD_FLUSH, 0, 0, {}, op);
  }

  /**
   * Block status of [offset, offset+length) for one negotiated context. Returns the extents the server described
   * (they start at offset, are contiguous, and may cover less than length: call again from where they end).
   */
  async blockStatus(context: string, offset: number, length: number, op?: Op): Promise<Extent[]> {
    const id = this.contexts.get(context);
    if (id === undefined) throw new CofferError('INTERNAL', `meta context ${context} was not negotiated`);
    this.checkRange(offset, length);
    const extents = new Map<number, Extent[]>();
    await this.request(P.CMD_BLOCK_STATUS, offset, Math.min(length, 0xffffffff), { extents }, op);
    const list = extents.get(id);
    if (!list || list.length === 0) throw protocolError(`no block status for context ${context}`);
    return list;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.reader.error) {
      const req = Buffer.alloc(28);
      req.writeUInt32BE(P.REQUEST_MAGIC, 0);
      req.writeUInt16BE(P.CMD_DISC, 6);
      this.socket.write(req);
    }
    this.socket.end();
    this.socket.destroy();
    this.failAll(disconnected(`${this.description}: closed`));
  }

  private checkRange(offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length <= 0 ||
      offset + length > this.sizeBytes
    ) {
      throw new CofferError(
        'INTERNAL',
        `NBD request [${offset}, +${length}) outside the export of ${this.sizeBytes} bytes`,
      );
    }
  }

  private request(
    cmd: number,
    offset: number,
    length: number,
    extra: { into?: Buffer; extents?: Map<number, Extent[]>; payload?: Buffer },
    op?: Op,
  ): Promise<void> {
    if (this.closed || this.reader.error)
      return Promise.reject(this.reader.error ?? disconnected(`${this.description}: closed`));
    op?.signal?.throwIfAborted();
    const cookie = this.nextCookie++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.abortConnection(
          new CofferError('SOURCE_UNREADABLE', `${this.description}: no reply within ${this.timeoutMs} ms`, {
            details: { nbd: 'timeout', retryable: true },
          }),
        );
      }, this.timeoutMs);
      const { payload, ...rest } = extra;
      this.pending.set(cookie, { cmd, offset, length, covered: 0, timer, resolve, reject, ...rest });
      const req = Buffer.alloc(28);
      req.writeUInt32BE(P.REQUEST_MAGIC, 0);
      req.writeUInt16BE(cmd === P.CMD_READ && this.structured ? P.CMD_FLAG_DF : 0, 4);
      req.writeUInt16BE(cmd, 6);
      req.writeBigUInt64BE(cookie, 8);
      req.writeBigUInt64BE(BigInt(offset), 16);
      req.writeUInt32BE(length, 24);
      this.socket.write(payload ? Buffer.concat([req, payload]) : req);
    });
  }

  private abortConnection(e: CofferError): void {
    this.reader.fail(e);
    this.socket.destroy();
    this.failAll(e);
  }

  private failAll(e: CofferError): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  private async replyLoop(): Promise<void> {
    try {
      for (;;) {
        const magic = (await this.reader.read(4)).readUInt32BE(0);
        if (magic === P.SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === P.STRUCTURED_REPLY_MAGIC) await this.structuredReply();
        else throw protocolError(`${this.description}: bad reply magic 0x${magic.toString(16)}`);
      }
    } catch (e) {
      const err = e instanceof CofferError ? e : disconnected(String(e));
      this.abortConnection(err);
    }
  }

  private take(cookie: bigint): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw protocolError(`${this.description}: reply for unknown cookie ${cookie}`);
    return p;
  }

  private finish(cookie: bigint, p: Pending): void {
    this.pending.delete(cookie);
    clearTimeout(p.timer);
    if (p.error) p.reject(p.error);
    else p.resolve();
  }

  private async simpleReply(): Promise<void> {
    const h = await this.reader.read(12);
    const error = h.readUInt32BE(0);
    const cookie = h.readBigUInt64BE(4);
    const p = this.take(cookie);
    if (this.structured && p.cmd === P.CMD_READ && error === 0)
      throw protocolError('simple reply with data after structured replies were negotiated');
    if (error !== 0) p.error = serverError(this.description, error, '');
    else if (p.cmd === P.CMD_READ) {
      const data = await this.reader.read(p.length);
      data.copy(p.into!);
    } else if (p.cmd === P.CMD_BLOCK_STATUS) throw protocolError('simple reply to BLOCK_STATUS');
    this.finish(cookie, p);
  }

  private async structuredReply(): Promise<void> {
    const h = await this.reader.read(16);
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const cookie = h.readBigUInt64BE(4);
    const length = h.readUInt32BE(12);
    const p = this.take(cookie);
    const limit = p.cmd === P.CMD_READ ? p.length + 8 : P.MAX_STRUCTURED_CHUNK_BYTES;
    if (length > Math.max(limit, 6 + 4096))
      throw protocolError(`${this.description}: reply chunk of ${length} bytes exceeds the request`);
    const payload = await this.reader.read(length);
    switch (type) {
      case P.REPLY_TYPE_NONE:
        if (length !== 0 || !(flags & P.REPLY_FLAG_DONE)) throw protocolError('malformed NONE chunk');
        break;
      case P.REPLY_TYPE_OFFSET_DATA: {
        if (p.cmd !== P.CMD_READ || length < 8) throw protocolError('unexpected OFFSET_DATA chunk');
        const off = Number(payload.readBigUInt64BE(0));
        const n = length - 8;
        if (off < p.offset || off + n > p.offset + p.length)
          throw protocolError(`OFFSET_DATA [${off}, +${n}) outside the request`);
        claim(p, off - p.offset, n);
        payload.copy(p.into!, off - p.offset, 8);
        break;
      }
      case P.REPLY_TYPE_OFFSET_HOLE: {
        if (p.cmd !== P.CMD_READ || length !== 12) throw protocolError('unexpected OFFSET_HOLE chunk');
        const off = Number(payload.readBigUInt64BE(0));
        const n = payload.readUInt32BE(8);
        if (n === 0 || off < p.offset || off + n > p.offset + p.length)
          throw protocolError(`OFFSET_HOLE [${off}, +${n}) outside the request`);
        claim(p, off - p.offset, n);
        p.into!.fill(0, off - p.offset, off - p.offset + n);
        break;
      }
      case P.REPLY_TYPE_BLOCK_STATUS: {
        if (p.cmd !== P.CMD_BLOCK_STATUS || length < 12 || (length - 4) % 8 !== 0)
          throw protocolError('malformed BLOCK_STATUS chunk');
        const ctx = payload.readUInt32BE(0);
        const list: Extent[] = [];
        let off = p.offset;
        for (let i = 4; i < length; i += 8) {
          const n = payload.readUInt32BE(i);
          if (n === 0) throw protocolError('zero-length block status extent');
          list.push({ offset: off, length: n, flags: payload.readUInt32BE(i + 4) });
          off += n;
        }
        p.extents!.set(ctx, list);
        break;
      }
      default:
        if (type & 0x8000) {
          if (length < 6) throw protocolError('short error chunk');
          const errno = payload.readUInt32BE(0);
          const msgLen = payload.readUInt16BE(4);
          if (6 + msgLen > length) throw protocolError('error message longer than its chunk');
          p.error ??= serverError(this.description, errno, payload.toString('utf8', 6, 6 + msgLen));
        } else {
          throw protocolError(`unknown reply chunk type ${type}`);
        }
    }
    if (flags & P.REPLY_FLAG_DONE) {
      if (!p.error && p.cmd === P.CMD_READ && p.covered !== p.length) {
        throw protocolError(`read of ${p.length} bytes at ${p.offset} answered with ${p.covered} bytes`);
      }
      this.finish(cookie, p);
    }
  }
}

/** Records that [from, from+n) of a read was answered; a second answer for any byte is a protocol violation. */
function claim(p: Pending, from: number, n: number): void {
  const ranges = (p.ranges ??= []);
  if (ranges.length >= 4096) throw protocolError('a read answered in more than 4096 pieces');
  for (const [s, e] of ranges) {
    if (from < e && s < from + n)
      throw protocolError(
        `overlapping replies for bytes ${p.offset + Math.max(s, from)}..${p.offset + Math.min(e, from + n)}`,
      );
  }
  ranges.push([from, from + n]);
  p.covered += n;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function sendOption(socket: net.Socket, option: number, data: Buffer): void {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(P.IHAVEOPT, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  socket.write(Buffer.concat([h, data]));
}

async function readOptionReply(
  reader: SocketReader,
  description: string,
): Promise<{ option: number; type: number; data: Buffer; message: string }> {
  const h = await reader.read(20);
  if (h.readBigUInt64BE(0) !== P.OPT_REPLY_MAGIC) throw protocolError(`${description}: bad option reply magic`);
  const option = h.readUInt32BE(8);
  const type = h.readUInt32BE(12);
  const length = h.readUInt32BE(16);
  if (length > P.MAX_OPTION_REPLY_BYTES) throw protocolError(`${description}: option reply of ${length} bytes`);
  const data = Buffer.from(await reader.read(length));
  return { option, type, data, message: type & P.REP_FLAG_ERROR ? data.toString('utf8') : '' };
}

function optionFailed(description: string, what: string, r: { type: number; message: string }): CofferError {
  const names: Record<number, string> = {
    [P.REP_ERR_UNSUP]: 'unsupported',
    [P.REP_ERR_POLICY]: 'refused by policy',
    [P.REP_ERR_INVALID]: 'invalid',
    [P.REP_ERR_PLATFORM]: 'unsupported on this platform',
    [P.REP_ERR_TLS_REQD]: 'TLS required',
    [P.REP_ERR_UNKNOWN]: 'unknown export',
    [P.REP_ERR_SHUTDOWN]: 'server shutting down',
    [P.REP_ERR_BLOCK_SIZE_REQD]: 'block size required',
    [P.REP_ERR_TOO_BIG]: 'too big',
  };
  const why =
    r.type & P.REP_FLAG_ERROR ? (names[r.type] ?? `error 0x${r.type.toString(16)}`) : `unexpected reply type ${r.type}`;
  return new CofferError(
    'SOURCE_UNREADABLE',
    `${description}: ${what} failed: ${why}${r.message ? ` (${r.message})` : ''}`,
    {
      details: { nbd: 'server-error', retryable: r.type === P.REP_ERR_SHUTDOWN },
      ...(r.type === P.REP_ERR_TLS_REQD ? { hint: 'the server requires TLS: use nbds://' } : {}),
    },
  );
}

function serverError(description: string, errno: number, message: string): CofferError {
  return new CofferError(
    'SOURCE_UNREADABLE',
    `${description}: server error ${P.ERRNO_NAMES[errno] ?? errno}${message ? `: ${message}` : ''}`,
    {
      details: { nbd: 'server-error', errno, retryable: errno === 108 },
    },
  );
}

function openSocket(
  address: NbdAddress,
  timeoutMs: number,
  description: string,
  signal?: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      'path' in address
        ? net.createConnection({ path: address.path })
        : net.createConnection({ host: address.host, port: address.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new CofferError('SOURCE_UNREADABLE', `${description}: connection timed out after ${timeoutMs} ms`, {
          details: { nbd: 'timeout', retryable: true },
        }),
      );
    }, timeoutMs);
    const onAbort = () => {
      socket.destroy();
      reject(new CofferError('CANCELLED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(
        new CofferError(
          'SOURCE_UNREADABLE',
          `${description}: cannot connect: ${
            e.code === 'ECONNREFUSED' ? 'connection refused (is the NBD server running?)' : e.message
          }`,
          { details: { nbd: 'connect', retryable: true, errno: e.code }, cause: e },
        ),
      );
    });
  });
}

function upgradeTls(
  socket: net.Socket,
  options: tls.ConnectionOptions,
  timeoutMs: number,
  description: string,
): Promise<net.Socket> {
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  return new Promise((resolve, reject) => {
    const t = tls.connect({ ...options, socket });
    const timer = setTimeout(() => {
      t.destroy();
      reject(
        new CofferError('SOURCE_UNREADABLE', `${description}: TLS handshake timed out`, {
          details: { nbd: 'timeout', retryable: true },
        }),
      );
    }, timeoutMs);
    t.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(t);
    });
    t.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new CofferError('SOURCE_UNREADABLE', `${description}: TLS failed: ${e.message}`, {
          details: { nbd: 'tls', retryable: false },
          cause: e,
        }),
      );
    });
  });
}
