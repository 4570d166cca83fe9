import { formatBytes, formatDuration } from '../../shared/index.js';

export interface ProgressSink {
  isTTY: boolean;
  write(s: string): void;
}

/**
 * Progress on stderr: a redrawn bar on a TTY (at most 10 times a second), plain lines otherwise
 * (every 10% or 10 s), nothing when disabled.
 */
export class ProgressReporter {
  private readonly start = Date.now();
  private lastDraw = 0;
  private lastLineAt = 0;
  private lastLinePct = -1;
  private drawn = false;

  constructor(
    private readonly out: ProgressSink,
    private readonly label: string,
    private readonly enabled: boolean,
    private readonly unit: 'bytes' | 'items' = 'bytes',
  ) {}

  private fmt(n: number): string {
    return this.unit === 'bytes' ? formatBytes(n) : String(Math.round(n));
  }

  private rateText(rate: number): string {
    return this.unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)}/s`;
  }

  update(done: number, total: number, extra = ''): void {
    if (!this.enabled) return;
    const now = Date.now();
    const pct = total > 0 ? Math.min(100, (done / total) * 100) : 0;
    const elapsed = now - this.start;
    const rate = elapsed > 0 ? (done / elapsed) * 1000 : 0;
    if (this.out.isTTY) {
      if (now - this.lastDraw < 100 && done < total) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round((pct / 100) * width);
      const eta = rate > 0 && total > done ? ` ETA ${formatDuration(((total - done) / rate) * 1000)}` : '';
      const line =
        `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct.toFixed(0).padStart(3)}% ` +
        `${this.fmt(done)}/${this.fmt(total)} ${this.rateText(rate)}${eta}${extra ? ' ' + extra : ''}`;
      this.out.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else {
      const step = Math.floor(pct / 10) * 10;
      if (step > this.lastLinePct || now - this.lastLineAt > 10_000) {
        this.lastLinePct = step;
        this.lastLineAt = now;
        this.out.write(
          `${this.label}: ${pct.toFixed(0)}% ${this.fmt(done)} ` +
            `of ${this.fmt(total)}, ${this.rateText(rate)}${extra ? ', ' + extra : ''}\n`,
        );
      }
    }
  }

  done(): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
  }
}
