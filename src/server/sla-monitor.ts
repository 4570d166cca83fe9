import { asCofferError, type Logger } from '../shared/index.js';
import type { Catalog } from './catalog/index.js';
import type { Notifier } from './notifier.js';
import type { Vcenters } from './vcenters.js';
import { vmStatuses } from './vm-status.js';

/**
 * Evaluates RPO compliance every `checkSeconds` (and after each backup) and notifies a VM's breach once, until the
 * VM is compliant again (the sla_state table remembers what was notified).
 */
export class SlaMonitor {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly catalog: Pick<Catalog, 'policies' | 'restorePoints' | 'jobs' | 'slaState'>,
    private readonly vcenters: Pick<Vcenters, 'inventory'>,
    private readonly notifier: Pick<Notifier, 'notify'>,
    private readonly checkSeconds: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.check(), this.checkSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  check(now = new Date()): void {
    try {
      for (const s of vmStatuses(this.catalog, this.catalog.policies.list(), this.vcenters.inventory(), now)) {
        if (s.rpoCompliant === null) continue;
        const breached = !s.rpoCompliant;
        if (this.catalog.slaState.get(s.name)?.breached === breached) continue;
        this.catalog.slaState.set(s.name, breached, now.toISOString());
        if (breached) {
          this.notifier.notify({
            event: 'sla.breach',
            time: now.toISOString(),
            summary:
              `VM ${s.name} breaches its RPO of ${s.rpoHours} h ` +
              `(${s.lastPoint ? `newest restore point ${s.lastPoint.endTime}` : 'no restore point'})`,
            vm: s.name,
            rpoHours: s.rpoHours,
            lastPoint: s.lastPoint,
          });
        }
      }
    } catch (e) {
      this.logger.warn(`SLA check: ${asCofferError(e).message}`);
    }
  }
}
