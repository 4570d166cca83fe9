import { createHash } from 'node:crypto';
import * as https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import * as tls from 'node:tls';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { CofferError, type Op } from '../shared/index.js';

/** How the vCenter certificate is checked (DESIGN.md §vSphere, TLS). */
export interface TlsPolicy {
  /** Skip every check (lab use only). */
  insecure?: boolean | undefined;
  /** Pin the certificate: SHA-256 (64 hex digits) or SHA-1 (40), colons and case ignored. */
  thumbprint?: string | undefined;
}

export interface HttpReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequest extends Op {
  method: 'GET' | 'POST' | 'PUT' | 'HEAD' | 'DELETE';
  path: string;
  headers?: Record<string, string | number>;
  body?: Buffer | Readable | undefined;
  timeoutMs?: number;
  /** Largest reply body accepted (default 64 MiB). */
  maxBytes?: number;
}

/** Normalizes a thumbprint to lowercase hex without separators; USAGE when it is neither SHA-256 nor SHA-1. */
export function normalizeThumbprint(t: string): string {
  const hex = t
    .replace(/^sha(1|256)[:=]/i, '')
    .replace(/[:\s-]/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex) && !/^[0-9a-f]{40}$/.test(hex)) {
    throw new CofferError(
      'USAGE',
      `--thumbprint must be a SHA-256 (or SHA-1) certificate fingerprint in hex, not ${JSON.stringify(t)}`,
    );
  }
  return hex;
}

export function certFingerprint(raw: Buffer, algo: 'sha256' | 'sha1' = 'sha256'): string {
  return createHash(algo).update(raw).digest('hex');
}

export function formatFingerprint(hex: string): string {
  return hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/**
 * HTTPS to one vCenter/ESXi endpoint with keep-alive. With a pinned thumbprint the TLS socket is handed to the HTTP
 * layer only after the peer certificate's fingerprint matched (nothing, not even the login, is written before), so a
 * self-signed vCenter is safe without `--insecure-tls`.
 */
export class HttpsClient {
  private readonly agent: https.Agent;
  private readonly pin: string | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly tlsPolicy: TlsPolicy,
  ) {
    this.pin = tlsPolicy.thumbprint ? normalizeThumbprint(tlsPolicy.thumbprint) : undefined;
    const pin = this.pin;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: !tlsPolicy.insecure && !pin });
    if (pin) {
      // Node's http Agent accepts an asynchronous createConnection (callback form): the socket is used only once
      // verified.
      (agent as unknown as { createConnection: unknown }).createConnection = (
        options: tls.ConnectionOptions,
        cb: (err: Error | null, s?: Duplex) => void,
      ) => {
        const socket = tls.connect({ ...options, rejectUnauthorized: false });
        const onError = (e: Error) => cb(e);
        socket.once('error', onError);
        // a server that never finishes the handshake must not hang us (the HTTP timeout starts only afterwards)
        socket.setTimeout(30_000, () =>
          socket.destroy(
            new CofferError('VSPHERE_FAULT', `TLS handshake with ${host}:${port} timed out`, {
              details: { retryable: true },
            }),
          ),
        );
        socket.once('secureConnect', () => {
          socket.setTimeout(0);
          socket.off('error', onError);
          const cert = socket.getPeerCertificate();
          const actual = cert?.raw ? certFingerprint(cert.raw, pin.length === 40 ? 'sha1' : 'sha256') : '';
          if (actual !== pin) {
            socket.destroy();
            cb(
              new CofferError(
                'VSPHERE_TLS',
                `the certificate of ${host}:${port} has the fingerprint ${formatFingerprint(actual) || '(none)'}, ` +
                  `not the pinned ${formatFingerprint(pin)}`,
                { hint: 'if the vCenter certificate was replaced on purpose, pass its new --thumbprint' },
              ),
            );
            return;
          }
          cb(null, socket);
        });
        return undefined;
      };
    }
    this.agent = agent;
  }

  get origin(): string {
    return `https://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  async request(req: HttpRequest): Promise<HttpReply> {
    const maxBytes = req.maxBytes ?? 64 * 1024 * 1024;
    const timeoutMs = req.timeoutMs ?? 120_000;
    req.signal?.throwIfAborted();
    return new Promise<HttpReply>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        r.destroy();
        reject(this.translate(e, req));
      };
      const r = https.request(
        {
          host: this.host,
          port: this.port,
          method: req.method,
          path: req.path,
          agent: this.agent,
          headers: req.headers ?? {},
          servername: isIP(this.host) ? undefined : this.host,
          signal: req.signal,
        },
        (res) => {
          const parts: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
            if (size > maxBytes) {
              res.destroy();
              fail(
                new CofferError(
                  'VSPHERE_FAULT',
                  `${req.method} ${req.path.split('?')[0]}: reply larger than ${maxBytes} bytes`,
                  { details: { protocol: true } },
                ),
              );
              return;
            }
            parts.push(d);
          });
          res.on('error', fail);
          res.on('end', () => {
            if (settled) return;
            settled = true;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) });
          });
        },
      );
      r.setTimeout(timeoutMs, () =>
        fail(
          new CofferError(
            'VSPHERE_FAULT',
            `${req.method} ${req.path.split('?')[0]} on ${this.origin}: no reply within ${timeoutMs / 1000} s`,
            { details: { retryable: true } },
          ),
        ),
      );
      r.on('error', fail);
      const body = req.body;
      if (body === undefined) r.end();
      else if (Buffer.isBuffer(body)) r.end(body);
      else {
        body.on('error', fail);
        body.pipe(r);
      }
    });
  }

  private translate(e: unknown, req: HttpRequest): CofferError {
    if (e instanceof CofferError) return e;
    const err = e as NodeJS.ErrnoException & { cause?: unknown };
    if (err.name === 'AbortError' || err.code === 'ABORT_ERR')
      return new CofferError('CANCELLED', 'cancelled', { cause: e });
    const inner = err.cause instanceof CofferError ? err.cause : undefined;
    if (inner) return inner;
    const code = err.code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return new CofferError('VSPHERE_TLS', `cannot verify the TLS certificate of ${this.origin}: ${err.message}`, {
        hint:
          'pin the certificate with --thumbprint SHA256 (`coffer vsphere thumbprint vsphere://HOST:PORT` prints ' +
          'it), or pass --insecure-tls in a lab',
        cause: e,
      });
    }
    return new CofferError(
      'VSPHERE_FAULT',
      `cannot reach vCenter at ${this.origin} (${req.method} ${req.path.split('?')[0]}): ${err.message}`,
      { details: { retryable: true, errno: code }, cause: e },
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The SHA-256 fingerprint of the certificate a server presents (to print for --thumbprint; nothing is sent). */
export async function fetchThumbprint(host: string, port: number, op: Op = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false, servername: isIP(host) ? undefined : host });
    const abort = () => s.destroy(new CofferError('CANCELLED', 'cancelled'));
    op.signal?.addEventListener('abort', abort, { once: true });
    s.setTimeout(30_000, () => s.destroy(new Error('timed out')));
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      s.end();
      op.signal?.removeEventListener('abort', abort);
      resolve(certFingerprint(cert.raw));
    });
    s.once('error', (e) => {
      op.signal?.removeEventListener('abort', abort);
      reject(
        e instanceof CofferError
          ? e
          : new CofferError('VSPHERE_FAULT', `cannot reach ${host}:${port}: ${e.message}`, { cause: e }),
      );
    });
  });
}
