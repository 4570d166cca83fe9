import type { JobsTable } from './catalog/index.js';
import type { RepositoryManager } from './repositories.js';
import type { VmStatus } from './vm-status.js';

/** HTTP request counts by method and status class, kept in memory since start. */
export class HttpCounters {
  readonly counts = new Map<string, number>();
  add(method: string, status: number): void {
    const k = `${method}|${Math.floor(status / 100)}xx`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labels = (l: Record<string, string>) => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}` : '';
};

/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: job counts and durations come from the
 * catalog (they survive restarts), VM and repository gauges from the latest state.
 */
export function renderMetrics(
  jobTable: JobsTable,
  repos: RepositoryManager,
  vms: VmStatus[],
  http: HttpCounters,
  startedAt: Date,
  jsonBodiesParsed = 0,
): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  };
  metric('coffer_up', 'gauge', 'The server is running.', [[{}, 1]]);
  metric('coffer_start_time_seconds', 'gauge', 'Start time of the server (Unix seconds).', [
    [{}, Math.floor(startedAt.getTime() / 1000)],
  ]);
  const jobs = jobTable.countByKindAndStatus();
  metric(
    'coffer_jobs',
    'gauge',
    'Jobs in the catalog by kind and status.',
    jobs.map((j) => [{ kind: j.kind, status: j.status }, j.n]),
  );
  const dur = jobTable.succeededDurations();
  out.push(
    '# HELP coffer_job_duration_seconds Duration of succeeded jobs.',
    '# TYPE coffer_job_duration_seconds summary',
  );
  for (const d of dur)
    out.push(
      `coffer_job_duration_seconds_sum${labels({ kind: d.kind })} ${d.s.toFixed(3)}`,
      `coffer_job_duration_seconds_count${labels({ kind: d.kind })} ${d.n}`,
    );
  metric(
    'coffer_vm_protected',
    'gauge',
    'The VM is covered by an enabled policy and has a restore point.',
    vms.map((v) => [{ vm: v.name }, v.protected ? 1 : 0]),
  );
  metric(
    'coffer_vm_backup_failing',
    'gauge',
    'The newest finished backup of the VM failed (VMs with a finished backup).',
    vms.filter((v) => v.lastJob !== null).map((v) => [{ vm: v.name }, v.failing ? 1 : 0]),
  );
  metric(
    'coffer_vm_rpo_compliant',
    'gauge',
    'The newest restore point of the VM is within its RPO (VMs under a policy).',
    vms.filter((v) => v.rpoCompliant !== null).map((v) => [{ vm: v.name }, v.rpoCompliant ? 1 : 0]),
  );
  metric(
    'coffer_vm_last_restore_point_timestamp_seconds',
    'gauge',
    'End time of the newest restore point of the VM.',
    vms.filter((v) => v.lastPoint).map((v) => [{ vm: v.name }, Math.floor(Date.parse(v.lastPoint!.endTime) / 1000)]),
  );
  metric(
    'coffer_vm_restore_points',
    'gauge',
    'Restore points of the VM.',
    vms.map((v) => [{ vm: v.name }, v.points]),
  );
  const stats = repos.stats();
  metric(
    'coffer_repository_stored_bytes',
    'gauge',
    'Bytes of all blobs in the repository.',
    stats.map((r) => [{ repository: r.name }, r.storedBytes]),
  );
  metric(
    'coffer_repository_logical_bytes',
    'gauge',
    'Non-zero bytes referenced by restore points, counted per restore point.',
    stats.map((r) => [{ repository: r.name }, r.logicalBytes]),
  );
  metric(
    'coffer_repository_dedup_ratio',
    'gauge',
    'logical bytes / chunk bytes (deduplication and compression).',
    stats.filter((r) => r.dedupRatio !== null).map((r) => [{ repository: r.name }, r.dedupRatio!]),
  );
  metric(
    'coffer_repository_restore_points',
    'gauge',
    'Restore points in the repository.',
    stats.map((r) => [{ repository: r.name }, r.points]),
  );
  metric(
    'coffer_http_requests_total',
    'counter',
    'HTTP requests answered since start.',
    [...http.counts].map(([k, n]) => {
      const [method, code] = k.split('|') as [string, string];
      return [{ method, code }, n];
    }),
  );
  metric(
    'coffer_http_json_bodies_parsed_total',
    'counter',
    'JSON request bodies parsed since start (only authenticated requests and logins reach the parser).',
    [[{}, jsonBodiesParsed]],
  );
  return out.join('\n') + '\n';
}
