import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A test double for faults a real storage server cannot be made to produce on demand: an HTTP proxy on 127.0.0.1
 * in front of Azurite/s3rver that answers a chosen share of requests with throttling (429/503 with Azure's
 * error code headers) or cuts the connection, and forwards the rest unchanged.
 */
export interface FaultPlan {
  /** 0..1: share of requests that get a fault */
  rate: number;
  kind: 'throttle-503' | 'throttle-429' | 'reset' | 'mixed';
  /** only requests whose method is in this list (default: all) */
  methods?: string[];
}

export class FaultProxy {
  private server!: Server;
  plan: FaultPlan = { rate: 0, kind: 'throttle-503' };
  faults = 0;
  forwarded = 0;
  private seed = 12345;

  constructor(private readonly targetPort: number) {}

  /** deterministic pseudo-random numbers (a test must fail or pass the same way every run) */
  private rand(): number {
    this.seed = (this.seed * 1103515245 + 12345) & 0x7fffffff;
    return this.seed / 0x7fffffff;
  }

  async start(): Promise<number> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const eligible = !this.plan.methods || this.plan.methods.includes(req.method ?? '');
    if (eligible && this.rand() < this.plan.rate) {
      this.faults++;
      const kind =
        this.plan.kind === 'mixed'
          ? (['throttle-503', 'throttle-429', 'reset'] as const)[this.faults % 3]!
          : this.plan.kind;
      req.resume();
      if (kind === 'reset') {
        req.socket.destroy();
        return;
      }
      const status = kind === 'throttle-429' ? 429 : 503;
      const code = status === 503 ? 'ServerBusy' : 'TooManyRequests';
      const body =
        `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>Injected ` +
        `fault</Message></Error>`;
      req.on('end', () => {
        res.writeHead(status, {
          'x-ms-error-code': code,
          'content-type': 'application/xml',
          'content-length': Buffer.byteLength(body),
          'retry-after': '0',
        });
        res.end(body);
      });
      return;
    }
    this.forwarded++;
    const up = request(
      { host: '127.0.0.1', port: this.targetPort, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  }
}
