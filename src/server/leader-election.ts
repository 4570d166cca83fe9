import type { Logger } from '../shared/index.js';
import type { LeaderLock } from './catalog/index.js';
import type { Scheduler } from './scheduler.js';

/**
 * Runs the scheduler in exactly one server replica (ADR 0015): every `pollMs` each replica tries the catalog's leader
 * lock; the holder runs the scheduler (and picks up policy changes made through other replicas), the others keep it
 * stopped. A leader that dies releases the lock with its PostgreSQL session, so a survivor takes over within one poll
 * (plus the time PostgreSQL needs to see the connection closed: immediate after kill -9, keepalive-bounded after a
 * host or network loss). A leader whose lock connection breaks stops its scheduler at its next poll.
 */
export class LeaderElection {
  private timer: NodeJS.Timeout | undefined;
  private leader = false;

  constructor(
    private readonly lock: LeaderLock,
    private readonly scheduler: Pick<Scheduler, 'start' | 'stop' | 'sync'>,
    /** what else runs in the leader only (the RPO monitor: one notification per breach) */
    private readonly others: readonly { start(): void; stop(): void }[],
    private readonly logger: Logger,
    private readonly pollMs = 1_000,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref();
  }

  private poll(): void {
    const held = this.lock.tryAcquire();
    if (held && !this.leader) {
      this.leader = true;
      this.logger.info('elected scheduler leader');
      this.scheduler.start();
      for (const o of this.others) o.start();
    } else if (!held && this.leader) {
      this.leader = false;
      this.logger.warn('lost the scheduler leadership: scheduler stopped');
      this.stopAll();
    } else if (held) {
      this.scheduler.sync();
    }
  }

  private stopAll(): void {
    this.scheduler.stop();
    for (const o of this.others) o.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.leader) this.stopAll();
    this.leader = false;
    this.lock.close();
  }
}
