import type { Socket } from 'node:net';
import { CofferError } from '../shared/index.js';

/**
 * Reads exact byte counts from a socket. Buffers what arrives; `read(n)` resolves once n bytes are there.
 * When the socket ends or fails, pending and later reads reject with the connection error.
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: unknown) => void } | undefined;
  private failure: CofferError | undefined;

  constructor(socket: Socket, describe: string) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.pump();
    });
    socket.on('end', () => this.fail(disconnected(`${describe}: the server closed the connection`)));
    socket.on('close', () => this.fail(disconnected(`${describe}: connection closed`)));
    socket.on('error', (e) => this.fail(disconnected(`${describe}: ${e.message}`, e)));
  }

  fail(e: CofferError): void {
    this.failure ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  get error(): CofferError | undefined {
    return this.failure;
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new CofferError('INTERNAL', 'concurrent socket reads'));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  private pump(): void {
    if (this.waiter && this.buffered >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(this.take(w.n));
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

export function disconnected(message: string, cause?: unknown): CofferError {
  return new CofferError('SOURCE_UNREADABLE', message, { details: { nbd: 'disconnected', retryable: true }, cause });
}

export function protocolError(message: string): CofferError {
  return new CofferError('SOURCE_UNREADABLE', `NBD protocol error: ${message}`, {
    details: { nbd: 'protocol', retryable: false },
  });
}
