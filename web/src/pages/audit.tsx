import { api } from '../api/client.js';
import { Loaded, Pager, Table, Title } from '../ui/components.js';
import { when } from '../ui/format.js';
import { usePaged } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { PAGE_SIZE } from './vms.js';

/** The audit log (admins): who did what, newest first, filtered by actor and action, 100 a page. */
export function AuditPage({ params }: { params: URLSearchParams }) {
  const actor = params.get('actor') ?? '';
  const action = params.get('action') ?? '';
  const list = usePaged(
    (cursor) =>
      api('get /api/v1/audit', {
        query: { limit: PAGE_SIZE, cursor, actor: actor || undefined, action: action || undefined },
      }),
    [actor, action],
  );
  return (
    <>
      <Title>Audit log</Title>
      <form
        class="row filters"
        aria-label="filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          const form = e.currentTarget as HTMLFormElement;
          const v = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).value.trim();
          go(href('/audit', { actor: v('actor'), action: v('action') }));
        }}
      >
        <label for="audit-actor">Actor</label>
        <input id="audit-actor" name="actor" defaultValue={actor} />
        <label for="audit-action">Action</label>
        <input id="audit-action" name="action" defaultValue={action} placeholder="POST /api/v1/jobs" />
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      <Loaded state={list}>
        {(r) => (
          <Table id="audit-table" caption="audit log" head={['Time', 'Actor', 'Action', 'Status', 'From', 'Details']}>
            {r.items.map((a) => (
              <tr key={a.id} data-audit={a.id}>
                <td>{when(a.time)}</td>
                <td>{a.actor}</td>
                <td>{a.action}</td>
                <td class={a.status >= 400 ? 'bad' : ''}>{a.status}</td>
                <td>{a.remote}</td>
                <td class="mono small">{a.details ? JSON.stringify(a.details) : ''}</td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
      <Pager id="audit-pager" page={list.page} next={list.next} previous={list.previous} />
    </>
  );
}
