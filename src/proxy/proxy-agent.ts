import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { TOOL_VERSION } from '../engine/index.js';
import { runJob, type ProxyCapabilities } from '../jobs/index.js';
import { CofferError, asCofferError, type Logger } from '../shared/index.js';
import type { ProxyClient } from './proxy-client.js';
import { proxyJobDeps, type ProxyDeps } from './proxy-job-deps.js';
import { Claimed, HeartbeatAnswer, parseAnswer, Registered, type Assignment } from './wire.js';

/** What a proxy tells the server it can do. */
export type Capabilities = ProxyCapabilities;

export interface AgentOptions {
  name: string;
  concurrency: number;
  capabilities: Capabilities;
  /** how often it asks for work while it has a free slot */
  pollMs: number;
  /** heartbeat period; default: the server's (a third of its job lease) */
  heartbeatMs?: number | undefined;
  /** progress and log lines are sent at most this often per job */
  eventsMs?: number;
}

type Event =
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'progress'; unit: 'bytes' | 'items'; done: number; total: number; phase?: string | undefined };

interface Running {
  assignment: Assignment;
  controller: AbortController;
  /** the server no longer gives this proxy the job (cancelled, or taken back): nothing more is sent */
  lost: boolean;
  events: Event[];
  done: Promise<void>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
  });

/**
 * A backup proxy's life (docs/DESIGN.md §Proxies and placement): register (the server refuses another Coffer version),
 * then heartbeats (renewing the leases of its jobs) and claims while it has free slots; each job's description runs
 * through src/jobs' runJob, the same use cases as the server's own runner, with the repository and vCenter access that
 * came with the job (memory only); log lines and progress go back in batches, then the outcome. A refused token ends
 * the proxy (PROXY_REFUSED) after stopping its jobs; a lost lease stops that job.
 */
export class ProxyAgent {
  private readonly running = new Map<number, Running>();
  private fatal: CofferError | undefined;
  private readonly stop = new AbortController();
  /** this process, as the server records it (a second process with this proxy's token and name is refused) */
  private readonly instance = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private drained = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: ProxyClient,
    private readonly opts: AgentOptions,
    private readonly deps: ProxyDeps,
    private readonly logger: Logger,
  ) {}

  /** runs until deps.signal aborts (resolves) or the server refuses the proxy (rejects with the coded error) */
  async run(): Promise<void> {
    const onAbort = () => this.stop.abort();
    this.deps.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const reg = await this.register();
      if (!reg) return;
      this.drained = reg.drained;
      const heartbeatMs = this.opts.heartbeatMs ?? reg.heartbeatMs;
      this.logger.info(`registered with the server as ${reg.name}`, { leaseMs: reg.leaseMs, heartbeatMs });
      const beat = setInterval(() => void this.heartbeat(), heartbeatMs);
      try {
        await this.claimLoop();
      } finally {
        clearInterval(beat);
      }
    } finally {
      this.deps.signal.removeEventListener('abort', onAbort);
      await this.shutdown();
    }
    if (this.fatal) throw this.fatal;
  }

  private fail(e: CofferError): void {
    if (this.fatal) return;
    this.fatal = e;
    this.logger.warn(`stopping: [${e.code}] ${e.message}`);
    this.stop.abort();
  }

  private async register(): Promise<{ name: string; drained: boolean; leaseMs: number; heartbeatMs: number } | null> {
    const body = {
      name: this.opts.name,
      version: TOOL_VERSION,
      concurrency: this.opts.concurrency,
      capabilities: this.opts.capabilities,
      instance: this.instance,
    };
    for (let attempt = 1; !this.stop.signal.aborted; attempt++) {
      try {
        return parseAnswer(Registered, await this.client.post('/api/v1/proxy/register', body), 'register');
      } catch (e) {
        const err = asCofferError(e);
        // CONFLICT: another process runs with this token and name; it may be a crashed one whose heartbeat has
        // not aged out yet, so wait and try again (saying so)
        if (err.code !== 'TRANSIENT' && err.code !== 'CONFLICT') throw err;
        this.logger.warn(`register: [${err.code}] ${err.message}; retrying`);
        await sleep(Math.min(5000, 250 * attempt), this.stop.signal);
      }
    }
    return null;
  }

  private async heartbeat(): Promise<void> {
    if (this.fatal) return;
    try {
      const a = parseAnswer(
        HeartbeatAnswer,
        await this.client.post('/api/v1/proxy/heartbeat', { name: this.opts.name, running: [...this.running.keys()] }),
        'heartbeat',
      );
      if (a.drained !== this.drained) this.logger.info(a.drained ? 'drained: taking no new jobs' : 'undrained');
      this.drained = a.drained;
      for (const id of a.lost) {
        const r = this.running.get(id);
        if (!r || r.lost) continue;
        r.lost = true;
        this.logger.warn(`job ${id}: no longer held by this proxy (cancelled or taken back): stopping it`);
        r.controller.abort(new CofferError('CANCELLED', 'the job was cancelled or taken back by the server'));
      }
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'PROXY_REFUSED' || err.code === 'PROXY_VERSION') this.fail(err);
      else this.logger.warn(`heartbeat: [${err.code}] ${err.message}`);
    }
  }

  private async claimLoop(): Promise<void> {
    while (!this.stop.signal.aborted) {
      const free = this.opts.concurrency - this.running.size;
      if (free > 0 && !this.drained) {
        try {
          const { jobs } = parseAnswer(
            Claimed,
            await this.client.post('/api/v1/proxy/claim', { name: this.opts.name, free }),
            'claim',
          );
          for (const a of jobs) this.start(a);
        } catch (e) {
          const err = asCofferError(e);
          if (err.code === 'PROXY_REFUSED' || err.code === 'PROXY_VERSION') {
            this.fail(err);
            break;
          }
          this.logger.warn(`claim: [${err.code}] ${err.message}`);
        }
      }
      await new Promise<void>((r) => {
        this.wake = r;
        void sleep(this.opts.pollMs, this.stop.signal).then(r);
      });
      this.wake = undefined;
    }
  }

  private start(a: Assignment): void {
    const entry: Running = {
      assignment: a,
      controller: new AbortController(),
      lost: false,
      events: [],
      done: Promise.resolve(),
    };
    this.running.set(a.id, entry);
    this.logger.info(`job ${a.id}: started (attempt ${a.attempt})`);
    entry.done = this.execute(entry).finally(() => {
      this.running.delete(a.id);
      this.wake?.();
    });
  }

  private async execute(r: Running): Promise<void> {
    const a = r.assignment;
    const jobLogger: Logger = {
      info: (m) => r.events.push({ type: 'log', level: 'info', message: m }),
      warn: (m) => r.events.push({ type: 'log', level: 'warn', message: m }),
      debug: () => undefined,
    };
    const flusher = setInterval(() => void this.flush(r), this.opts.eventsMs ?? 500);
    let outcome: { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };
    try {
      const result = await runJob(a.description, proxyJobDeps(a, this.deps, jobLogger), {
        signal: r.controller.signal,
        onEvent: (e) => {
          if (e.type === 'log') r.events.push(e);
          else {
            // one progress event per batch is enough: the newest
            const last = r.events.at(-1);
            if (last?.type === 'progress') r.events[r.events.length - 1] = e;
            else r.events.push(e);
          }
        },
      });
      outcome = { ok: true, result: result ?? null };
    } catch (e) {
      const err = asCofferError(e);
      const reason = this.controllerReason(r);
      outcome = { ok: false, error: reason ?? { code: err.code, message: err.message } };
    } finally {
      clearInterval(flusher);
    }
    if (r.lost || this.fatal) return;
    await this.flush(r);
    await this.report(r, outcome);
  }

  /** why a job was stopped by this proxy (shutdown): retried elsewhere */
  private controllerReason(r: Running): { code: string; message: string } | undefined {
    const reason = r.controller.signal.reason as unknown;
    if (!r.controller.signal.aborted || !(reason instanceof CofferError) || reason.code !== 'TRANSIENT')
      return undefined;
    return { code: reason.code, message: reason.message };
  }

  private async flush(r: Running): Promise<void> {
    if (r.events.length === 0 || r.lost || this.fatal) return;
    const events = r.events.splice(0, 1000);
    try {
      await this.client.post(`/api/v1/proxy/jobs/${r.assignment.id}/events`, {
        name: this.opts.name,
        attempt: r.assignment.attempt,
        events,
      });
    } catch (e) {
      const err = asCofferError(e);
      if (err.code === 'CONFLICT') {
        r.lost = true;
        r.controller.abort(new CofferError('CANCELLED', err.message));
      } else if (err.code === 'PROXY_REFUSED') this.fail(err);
      else r.events.unshift(...events.filter((x) => x.type === 'log').slice(-200)); // sent with the next batch
    }
  }

  /** the outcome, retried while the server is unreachable and the job is still this proxy's */
  private async report(
    r: Running,
    outcome: { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } },
  ): Promise<void> {
    const a = r.assignment;
    for (let attempt = 1; !r.lost && !this.fatal; attempt++) {
      try {
        const s = await this.client.post<{ status: string }>(
          `/api/v1/proxy/jobs/${a.id}/finish`,
          { name: this.opts.name, attempt: a.attempt, outcome },
          { timeoutMs: 15 * 60_000 },
        );
        this.logger.info(`job ${a.id}: ${outcome.ok ? 'succeeded' : `failed [${outcome.error.code}]`} (${s.status})`);
        return;
      } catch (e) {
        const err = asCofferError(e);
        if (err.code !== 'TRANSIENT') {
          if (err.code === 'PROXY_REFUSED') this.fail(err);
          this.logger.warn(`job ${a.id}: the server did not take its outcome: [${err.code}] ${err.message}`);
          return;
        }
        await sleep(Math.min(5000, 250 * attempt));
      }
    }
  }

  /** stops the running jobs: after a refusal silently (their leases expire), at a shutdown reported as TRANSIENT */
  private async shutdown(): Promise<void> {
    for (const r of this.running.values())
      r.controller.abort(
        this.fatal
          ? new CofferError('CANCELLED', this.fatal.message)
          : new CofferError('TRANSIENT', `interrupted: proxy ${this.opts.name} shut down`),
      );
    await Promise.race([
      Promise.allSettled([...this.running.values()].map((r) => r.done)),
      new Promise((r) => setTimeout(r, 15_000).unref()),
    ]);
  }
}
