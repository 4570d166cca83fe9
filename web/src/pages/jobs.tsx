import { useState } from 'preact/hooks';
import { api } from '../api/client.js';
import type { Job, JobKind, JobState } from '../api/types.js';
import { ErrorBox, Loaded, Pager, Table, Title } from '../ui/components.js';
import { cancellable, failureText, statusClass, when } from '../ui/format.js';
import { useCan, usePaged } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { PAGE_SIZE } from './vms.js';

const STATES: JobState[] = ['queued', 'retrying', 'running', 'succeeded', 'failed', 'cancelled'];
const KINDS: JobKind[] = ['backup', 'restore', 'restore-vm', 'verify', 'prune', 'check'];

/** The same job again: a new job with the same arguments (a backup of the VM by its policy, a restore, ...). */
export async function retryJob(j: Job): Promise<number> {
  const p = j.params as Record<string, unknown>;
  const body =
    j.kind === 'backup'
      ? { kind: 'backup' as const, policy: j.policyId ?? '', ...(j.vm ? { vm: j.vm } : {}) }
      : j.kind === 'restore'
        ? {
            kind: 'restore' as const,
            repository: j.repository,
            pointId: String(p.pointId),
            disk: Number(p.disk),
            target: String(p.target),
            force: Boolean(p.force),
            ...(p.format ? { format: p.format as 'raw' | 'qcow2' | 'vmdk' | 'vhdx' } : {}),
          }
        : j.kind === 'restore-vm'
          ? // its parameters are the request's fields (all but kind and repository)
            ({ ...(p as object), kind: 'restore-vm' as const, repository: j.repository } as never)
          : j.kind === 'verify'
            ? { kind: 'verify' as const, repository: j.repository, readDataPercent: Number(p.readDataPercent ?? 0) }
            : j.kind === 'check'
              ? {
                  kind: 'check' as const,
                  repository: j.repository,
                  pointId: String(p.pointId),
                  files: p.files === true,
                }
              : { kind: 'prune' as const, repository: j.repository };
  const r = await api('post /api/v1/jobs', { body });
  return r.items[0]!.id;
}

/** Jobs, newest first: filters by status, kind and VM (in the URL), error column, retry, cancel, 100 a page. */
export function JobsPage({ params }: { params: URLSearchParams }) {
  const status = (params.get('status') ?? '') as JobState | '';
  const kind = (params.get('kind') ?? '') as JobKind | '';
  const vm = params.get('vm') ?? '';
  const canOperate = useCan('operate');
  const [error, setError] = useState<Error | undefined>();
  const list = usePaged(
    (cursor) =>
      api('get /api/v1/jobs', {
        query: { limit: PAGE_SIZE, cursor, status: status || undefined, kind: kind || undefined, vm: vm || undefined },
      }),
    [status, kind, vm],
  );
  const set = (k: string, v: string) => go(href('/jobs', { status, kind, vm, [k]: v }));
  const act = (f: () => Promise<unknown>) => () => f().catch((e: Error) => setError(e));
  return (
    <>
      <Title>Jobs</Title>
      <form
        class="row filters"
        aria-label="filter jobs"
        onSubmit={(e) => {
          e.preventDefault();
          set('vm', ((e.currentTarget as HTMLFormElement).elements.namedItem('vm') as HTMLInputElement).value);
        }}
      >
        <label for="job-status-filter">Status</label>
        <select id="job-status-filter" value={status} onChange={(e) => set('status', e.currentTarget.value)}>
          <option value="">any</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label for="job-kind-filter">Kind</label>
        <select id="job-kind-filter" value={kind} onChange={(e) => set('kind', e.currentTarget.value)}>
          <option value="">any</option>
          {KINDS.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <label for="job-vm-filter">VM</label>
        <input id="job-vm-filter" name="vm" defaultValue={vm} placeholder="VM name" />
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <ErrorBox error={error} />
      <Loaded state={list}>
        {(r) =>
          r.items.length === 0 ? (
            <p class="muted" id="no-jobs">
              No jobs.
            </p>
          ) : (
            <Table
              id="jobs-table"
              caption="jobs"
              head={['#', 'Kind', 'VM', 'Status', 'Failure', 'Proxy', 'Trigger', 'Created', 'Finished', '']}
            >
              {r.items.map((j) => (
                <tr key={j.id} data-job={j.id} data-status={j.status}>
                  <td>
                    <a href={`#/jobs/${j.id}`}>{j.id}</a>
                  </td>
                  <td>{j.kind}</td>
                  <td>{j.vm ?? '-'}</td>
                  <td class={`job-status ${statusClass(j.status)}`}>
                    {j.status === 'retrying' ? `retrying (${when(j.retryAt)})` : j.status}
                  </td>
                  <td class="job-error">
                    {j.waitReason && j.status === 'queued' ? j.waitReason : failureText(j.error)}
                  </td>
                  <td class="job-proxy">{j.proxy ?? '-'}</td>
                  <td>{j.trigger}</td>
                  <td>{when(j.createdAt)}</td>
                  <td>{when(j.finishedAt)}</td>
                  <td class="actions">
                    {canOperate && cancellable(j.status) ? (
                      <button
                        type="button"
                        class="secondary cancel"
                        onClick={act(async () => {
                          await api('post /api/v1/jobs/{id}/cancel', { path: { id: j.id } });
                          list.reload();
                        })}
                      >
                        Cancel
                      </button>
                    ) : null}
                    {canOperate && (j.status === 'failed' || j.status === 'cancelled') ? (
                      <button
                        type="button"
                        class="secondary retry"
                        onClick={act(async () => go(`/jobs/${await retryJob(j)}`))}
                      >
                        Retry
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </Table>
          )
        }
      </Loaded>
      <Pager id="jobs-pager" page={list.page} next={list.next} previous={list.previous} />
    </>
  );
}
