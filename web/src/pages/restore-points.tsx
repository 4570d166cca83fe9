import { api } from '../api/client.js';
import type { BootSummary, RestorePoint } from '../api/types.js';
import { Loaded, Pager, Table, Title } from '../ui/components.js';
import { bytes, when } from '../ui/format.js';
import { useAsync, useCan, usePaged } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { PAGE_SIZE } from './vms.js';

/** Restore points, newest first, filtered by VM and repository, 100 a page. */
export function RestorePointsPage({ params }: { params: URLSearchParams }) {
  const vm = params.get('vm') ?? '';
  const repository = params.get('repository') ?? '';
  const canRestore = useCan('restore');
  const filters = useAsync(
    () => Promise.all([api('get /api/v1/vms', { query: { limit: 500 } }), api('get /api/v1/repositories')] as const),
    [],
  );
  const list = usePaged(
    (cursor) => api('get /api/v1/restore-points', { query: { limit: PAGE_SIZE, cursor, vm, repository } }),
    [vm, repository],
  );
  const set = (k: string, v: string) => go(href('/restore-points', { vm, repository, [k]: v }));
  return (
    <>
      <Title>Restore points</Title>
      <form class="row filters" aria-label="filter restore points" onSubmit={(e) => e.preventDefault()}>
        <label for="vm-filter">VM</label>
        <select id="vm-filter" value={vm} onChange={(e) => set('vm', e.currentTarget.value)}>
          <option value="">all VMs</option>
          {filters.data?.[0].items.map((v) => (
            <option key={v.name} value={v.name}>
              {v.name}
            </option>
          ))}
          {vm && !filters.data?.[0].items.some((v) => v.name === vm) ? <option value={vm}>{vm}</option> : null}
        </select>
        <label for="repo-filter">Repository</label>
        <select id="repo-filter" value={repository} onChange={(e) => set('repository', e.currentTarget.value)}>
          <option value="">all repositories</option>
          {filters.data?.[1].items.map((r) => (
            <option key={r.name} value={r.name}>
              {r.name}
            </option>
          ))}
        </select>
      </form>
      <Loaded state={list}>
        {(r) =>
          r.items.length === 0 ? (
            <p class="muted" id="no-points">
              No restore points{vm ? ` of ${vm}` : ''}.
            </p>
          ) : (
            <Table
              id="points-table"
              caption="restore points"
              head={['Time', 'VM', 'Repository', 'Mode', 'Disks', 'Stored', 'Verified', 'Anomaly', '']}
            >
              {r.items.map((p) => (
                <PointRow key={`${p.repository}/${p.id}`} p={p} canRestore={canRestore} />
              ))}
            </Table>
          )
        }
      </Loaded>
      <Pager id="points-pager" page={list.page} next={list.next} previous={list.previous} />
    </>
  );
}

function PointRow({ p, canRestore }: { p: RestorePoint; canRestore: boolean }) {
  const s = p.status;
  return (
    <tr data-point={p.id}>
      <td>
        {when(p.time)}
        <div class="muted mono">{p.id.slice(0, 12)}</div>
      </td>
      <td>{p.vm}</td>
      <td>{p.repository}</td>
      <td>{p.mode}</td>
      <td>
        {p.disks.map((d) => (
          <div class="row disk" key={d.index}>
            <span>
              disk {d.index}: {bytes(d.sizeBytes)}
            </span>
            <a
              class="button secondary browse"
              data-disk={d.index}
              href={href('/files', { point: p.id, repository: p.repository, disk: d.index })}
            >
              Browse files
            </a>
          </div>
        ))}
      </td>
      <td class="stored">{bytes(p.bytesStored)}</td>
      <td class="verification">
        {p.verification ? (
          <span class={p.verification.ok ? 'ok' : 'bad'}>{p.verification.ok ? 'ok' : 'failed'}</span>
        ) : (
          <span class="muted">not verified</span>
        )}
      </td>
      <td class={`anomaly ${!s ? 'muted' : s.suspicious || s.state === 'failed' ? 'bad' : 'ok'}`}>
        {!s ? 'unknown' : s.suspicious ? `suspicious (score ${s.score ?? '?'})` : s.state}
        {s?.check ? <div class={s.check.ok ? 'muted' : 'bad'}>check {s.check.ok ? 'passed' : 'failed'}</div> : null}
        {s?.check?.boot ? <BootDetail b={s.check.boot} /> : null}
        {s?.reasons.length ? (
          <ul class="signals">
            {s.reasons.map((x) => (
              <li key={x}>{x}</li>
            ))}
          </ul>
        ) : null}
      </td>
      <td>
        {canRestore ? (
          <a class="button restore" href={href('/restore', { point: p.id, repository: p.repository, vm: p.vm })}>
            Restore…
          </a>
        ) : null}
      </td>
    </tr>
  );
}

/** The boot part of a point's newest check: outcome, signal and time, why it failed, the boot script's result. */
function BootDetail({ b }: { b: BootSummary }) {
  const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
  const signal = b.signal === 'agent' ? 'guest agent answered' : `"${b.marker}" on the console`;
  const outcome = b.ok ? `booted: ${signal} after ${secs(b.elapsedMs)}` : b.ok === null ? 'not booted' : 'boot failed';
  const sc = b.script;
  const scriptEnd = !sc
    ? ''
    : sc.timedOut
      ? 'killed at its time limit'
      : sc.signal
        ? `ended by ${sc.signal}`
        : `exit ${sc.exitCode ?? '?'}`;
  return (
    <div class={`boot ${b.ok ? 'muted' : 'bad'}`} data-boot={b.ok === null ? 'not-booted' : b.ok ? 'ok' : 'failed'}>
      <div class="boot-outcome">
        {outcome}
        {b.accel ? ` (${b.accel.toUpperCase()})` : ''}
      </div>
      {b.note ? <div class="boot-note">{b.note}</div> : null}
      {sc ? (
        <details class="boot-script">
          <summary>
            script {sc.path.split('/').at(-1)}: {sc.ok ? 'passed' : 'failed'} ({scriptEnd}, {secs(sc.elapsedMs)})
          </summary>
          {sc.output ? <pre>{sc.output}</pre> : null}
        </details>
      ) : null}
    </div>
  );
}
