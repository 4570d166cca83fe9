import type { Dashboard } from '../api/types.js';
import { bytes } from '../ui/format.js';

const W = 560;
const H = 160;
const PAD = 30;

/** New data stored per day over the last 14 days (SVG bars, each with a title read by screen readers). */
export function TrendChart({ trend }: { trend: Dashboard['trend'] }) {
  const days: string[] = [];
  for (let i = 13; i >= 0; i--) days.push(new Date(Date.now() - i * 86_400_000).toISOString().slice(0, 10));
  const by = new Map(trend.map((t) => [t.day, t]));
  const bw = (W - PAD * 2) / days.length;
  const max = Math.max(1, ...days.map((d) => by.get(d)?.bytesStored ?? 0));
  const total = days.reduce((a, d) => a + (by.get(d)?.bytesStored ?? 0), 0);
  return (
    <figure class="chart-wrap">
      <svg
        class="chart"
        id="trend-chart"
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={`new data stored per day, last 14 days: ${bytes(total)} in all`}
      >
        <line class="axis" x1={PAD} y1={H - PAD} x2={W - PAD} y2={H - PAD} />
        <text x={PAD} y={14}>
          new data stored per day (max {bytes(max)})
        </text>
        <text x={PAD} y={H - 10}>
          {days[0]}
        </text>
        <text x={W - PAD - 60} y={H - 10}>
          {days[days.length - 1]}
        </text>
        {days.map((d, i) => {
          const v = by.get(d)?.bytesStored ?? 0;
          const bh = (v / max) * (H - PAD * 2);
          return (
            <rect
              key={d}
              class="bar"
              x={PAD + i * bw + 2}
              y={H - PAD - bh}
              width={bw - 4}
              height={Math.max(bh, v ? 1 : 0)}
              data-day={d}
            >
              <title>{`${d}: ${bytes(v)} stored, ${by.get(d)?.points ?? 0} restore points`}</title>
            </rect>
          );
        })}
      </svg>
    </figure>
  );
}
