import { api } from '../api/client.js';
import type { Dashboard, Job } from '../api/types.js';
import { Card, Loaded, Table, Title } from '../ui/components.js';
import { bytes, failureText, statusClass, when } from '../ui/format.js';
import { useAsync } from '../ui/hooks.js';
import { TrendChart } from './trend-chart.js';
import { VmTable } from './vm-table.js';

const DAY_MS = 86_400_000;

/** The jobs created in the last 24 h (newest first; pages of the API until older ones come). */
async function lastDayJobs(): Promise<Job[]> {
  const since = Date.now() - DAY_MS;
  const out: Job[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await api('get /api/v1/jobs', { query: { limit: 500, ...(cursor ? { cursor } : {}) } });
    const recent = r.items.filter((j) => Date.parse(j.createdAt) >= since);
    out.push(...recent);
    if (recent.length < r.items.length || !r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

export function DashboardPage() {
  const state = useAsync(
    () =>
      Promise.all([
        api('get /api/v1/dashboard'),
        api('get /api/v1/vms', { query: { limit: 500 } }),
        lastDayJobs(),
      ] as const),
    [],
  );
  return (
    <>
      <Title>Dashboard</Title>
      <Loaded state={state}>
        {([d, vms, jobs]) => (
          <>
            <Cards d={d} />
            <Failures d={d} />
            <TrendChart trend={d.trend} />
            <LastDay jobs={jobs} />
            <h3>Virtual machines</h3>
            <VmTable vms={vms.items} />
            {vms.nextCursor ? (
              <p>
                <a href="#/vms">All VMs…</a>
              </p>
            ) : null}
          </>
        )}
      </Loaded>
    </>
  );
}

function Cards({ d }: { d: Dashboard }) {
  const stored = d.repositories.reduce((a, r) => a + r.storedBytes, 0);
  const ratios = d.repositories.filter((r) => r.dedupRatio !== null);
  return (
    <section class="cards" aria-label="summary">
      <Card label="Protected VMs" value={`${d.vms.protected} / ${d.vms.total}`} cls={d.vms.unprotected ? '' : 'ok'} />
      <Card label="Unprotected VMs" value={`${d.vms.unprotected}`} cls={d.vms.unprotected ? 'bad' : ''} />
      <Card label="Failing VMs" value={`${d.vms.failing}`} cls={d.vms.failing ? 'bad' : ''} />
      <Card label="RPO compliant" value={`${d.vms.compliant}`} cls={d.vms.breached ? '' : 'ok'} />
      <Card label="RPO breached" value={`${d.vms.breached}`} cls={d.vms.breached ? 'bad' : ''} />
      <Card label="Storage used" value={bytes(stored)} />
      <Card
        label="Dedup ratio"
        value={ratios.length ? `${ratios.map((r) => (r.dedupRatio ?? 0).toFixed(2)).join(' / ')}×` : '-'}
      />
    </section>
  );
}

/** the VMs whose newest backup failed, and failed jobs per day (the dashboard API's failures) */
function Failures({ d }: { d: Dashboard }) {
  const days = d.failures.filter((f) => f.failed > 0);
  if (!d.failingVms.length && !days.length)
    return (
      <p id="failures" class="ok">
        No failed backups.
      </p>
    );
  return (
    <section id="failures" aria-labelledby="failures-title">
      <h3 id="failures-title">Failures</h3>
      {d.failingVms.length ? (
        <ul id="failing-vms">
          {d.failingVms.map((f) => (
            <li class="bad" key={f.name}>
              <a href={`#/jobs/${f.job}`}>{f.name}</a> {when(f.finishedAt)}: {failureText(f.error)}
            </li>
          ))}
        </ul>
      ) : null}
      {days.length ? (
        <p class="muted" id="failures-by-day">
          {days.map((f) => `${f.day}: ${f.failed} failed`).join(' · ')}
        </p>
      ) : null}
    </section>
  );
}

function LastDay({ jobs }: { jobs: Job[] }) {
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.status, (counts.get(j.status) ?? 0) + 1);
  return (
    <section id="last-day" aria-labelledby="last-day-title">
      <h3 id="last-day-title">Jobs of the last 24 hours</h3>
      <p id="last-day-counts">
        {jobs.length === 0
          ? 'No jobs in the last 24 hours.'
          : [...counts].map(([s, n]) => (
              <span key={s} class={`pill ${statusClass(s)}`}>
                {n} {s}
              </span>
            ))}
      </p>
      {jobs.length ? (
        <Table
          id="last-day-table"
          caption="jobs of the last 24 hours"
          head={['#', 'Kind', 'VM', 'Status', 'Failure', 'Created']}
        >
          {jobs.slice(0, 20).map((j) => (
            <tr key={j.id} data-job={j.id}>
              <td>
                <a href={`#/jobs/${j.id}`}>{j.id}</a>
              </td>
              <td>{j.kind}</td>
              <td>{j.vm ?? '-'}</td>
              <td class={statusClass(j.status)}>{j.status}</td>
              <td class="job-error">{failureText(j.error)}</td>
              <td>{when(j.createdAt)}</td>
            </tr>
          ))}
        </Table>
      ) : null}
      {jobs.length > 20 ? (
        <p>
          <a href="#/jobs">All {jobs.length} jobs…</a>
        </p>
      ) : null}
    </section>
  );
}
