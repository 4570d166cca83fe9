import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CofferError, ERROR_CODES, type ErrorCode } from '../shared/index.js';

/** Answers larger than this are refused (a claim of many jobs is a few KiB). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface ProxyClientOptions {
  /** https://HOST:PORT or http://127.0.0.1:PORT (plain HTTP only to the loopback interface) */
  server: string;
  token: string;
  /** PEM of the CA (or the self-signed certificate) that signed the server's certificate */
  ca?: Buffer | undefined;
}

const isLoopback = (host: string) =>
  host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * The proxy's side of the HTTP protocol (routes/proxies.ts on the server): JSON requests with the proxy token,
 * answers mapped to coded errors. Network failures and 5xx are TRANSIENT (the caller retries); the server's refusals
 * keep their code (PROXY_REFUSED, PROXY_VERSION, CONFLICT).
 */
export class ProxyClient {
  private readonly base: URL;

  constructor(private readonly opts: ProxyClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.server);
    } catch {
      throw new CofferError('USAGE', `--server must be a URL (https://HOST:PORT), not ${JSON.stringify(opts.server)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new CofferError('USAGE', `--server must be an https:// URL, not ${JSON.stringify(opts.server)}`);
    if (u.protocol === 'http:' && !isLoopback(u.hostname))
      throw new CofferError(
        'PROXY_REFUSED',
        `jobs carry repository passwords: --server must be https:// (plain http only to 127.0.0.1), not ${u.origin}`,
      );
    this.base = u;
  }

  async post<T>(path: string, body: unknown, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const url = new URL(path, this.base);
    const text = JSON.stringify(body);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          },
          ...(this.opts.ca ? { ca: this.opts.ca } : {}),
          timeout: opts.timeoutMs ?? 30_000,
          ...(opts.signal ? { signal: opts.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy();
              reject(new CofferError('TRANSIENT', `the server's answer to ${path} is too large`));
            } else chunks.push(c);
          });
          res.on('error', (e) => reject(new CofferError('TRANSIENT', `${path}: ${e.message}`)));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let json: unknown;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300 && json !== undefined) return resolve(json as T);
            reject(answerError(path, status, json));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (opts.signal?.aborted) return reject(new CofferError('CANCELLED', 'cancelled'));
        const tls = /certificate|self[- ]signed|CERT_|SSL/i.test(`${e.code} ${e.message}`);
        reject(
          new CofferError(
            tls ? 'PROXY_REFUSED' : 'TRANSIENT',
            tls
              ? `the server's TLS certificate is not trusted (${e.message}): give its CA with --ca-file`
              : `cannot reach the server at ${this.base.origin}: ${e.message}`,
          ),
        );
      });
      req.end(text);
    });
  }
}

/** The coded error of a refused request: the server's {error: {code, message}}, or TRANSIENT for 5xx and garbage. */
function answerError(path: string, status: number, json: unknown): CofferError {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof e?.code === 'string' && Object.hasOwn(ERROR_CODES, e.code) ? (e.code as ErrorCode) : undefined;
  const message = typeof e?.message === 'string' ? e.message.slice(0, 2000) : `HTTP ${status}`;
  if (status >= 500 || code === undefined || code === 'CATALOG_UNAVAILABLE')
    return new CofferError('TRANSIENT', `${path}: the server answered ${status}: ${message}`);
  if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN')
    return new CofferError('PROXY_REFUSED', `the server refused this proxy: ${message}`);
  return new CofferError(code, message);
}
