import nodemailer from 'nodemailer';
import { asCofferError, type Logger } from '../shared/index.js';
import { NOTIFICATION_EVENTS, type ServerConfig } from './config.js';

/**
 * job.* and sla.breach; `point.suspicious`: a backup's restore point is suspicious (anomaly score at or above the
 * policy's threshold); `point.indicators`: a file-level indicators check found ransomware traces.
 */
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];
export { NOTIFICATION_EVENTS };

/** a finished job as the transition needs it */
interface FinishedJob {
  id: number;
  kind: string;
  vm: string | null;
  status: string;
}

/**
 * The change of a VM's backup state that a finished backup makes: `job.first-failure` when it failed and the VM's
 * previous finished backup did not (or there was none), `job.recovered` when it succeeded after a failed one;
 * null otherwise (a second failure in a row, a success after a success, other kinds, cancelled jobs). Operators
 * subscribe to these two instead of every `job.failed` so that a VM failing every hour mails once (issue 20).
 */
export function backupTransition(
  job: FinishedJob,
  previous: Pick<FinishedJob, 'status'> | undefined,
): 'job.first-failure' | 'job.recovered' | null {
  if (job.kind !== 'backup' || job.vm === null) return null;
  if (job.status === 'failed') return previous?.status === 'failed' ? null : 'job.first-failure';
  if (job.status === 'succeeded') return previous?.status === 'failed' ? 'job.recovered' : null;
  return null;
}

export interface Notification {
  event: NotificationEvent;
  time: string;
  summary: string;
  [key: string]: unknown;
}

/**
 * Sends notifications to the configured webhooks (POST JSON) and SMTP recipients. Delivery is best effort with a
 * timeout and a few retries; a failed delivery is logged, never fails a job.
 */
export class Notifier {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly config: ServerConfig['notifications'],
    private readonly env: Record<string, string | undefined>,
    private readonly logger: Logger,
  ) {}

  notify(n: Notification): void {
    for (const w of this.config.webhooks) {
      if (!w.events.includes(n.event)) continue;
      const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'coffer-server' };
      if (w.tokenEnv && this.env[w.tokenEnv]) headers.authorization = `Bearer ${this.env[w.tokenEnv]}`;
      this.track(
        this.withRetries(`webhook ${new URL(w.url).origin}`, async () => {
          const r = await fetch(w.url, {
            method: 'POST',
            headers,
            body: JSON.stringify(n),
            signal: AbortSignal.timeout(10_000),
          });
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
        }),
      );
    }
    const smtp = this.config.smtp;
    if (smtp?.events.includes(n.event)) {
      const auth = smtp.userEnv
        ? { user: this.env[smtp.userEnv] ?? '', pass: smtp.passwordEnv ? (this.env[smtp.passwordEnv] ?? '') : '' }
        : undefined;
      const transport = nodemailer.createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure,
        ...(auth ? { auth } : {}),
        connectionTimeout: 10_000,
        ignoreTLS: !smtp.secure && !auth,
      });
      this.track(
        this.withRetries(`smtp ${smtp.host}:${smtp.port}`, async () => {
          await transport.sendMail({
            from: smtp.from,
            to: smtp.to,
            subject: `[coffer] ${n.event}: ${n.summary}`,
            text: `${n.summary}\n\n${JSON.stringify(n, null, 2)}\n`,
          });
        }),
      );
    }
  }

  /** Waits for deliveries in flight (shutdown, tests). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async withRetries(what: string, fn: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn();
        return;
      } catch (e) {
        if (attempt >= 3) {
          this.logger.warn(`notification to ${what} failed: ${asCofferError(e).message}`);
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
}
