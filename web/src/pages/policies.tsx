import { useState } from 'preact/hooks';
import { api } from '../api/client.js';
import type { Policy, PolicySpec } from '../api/types.js';
import { ErrorBox, Loaded, Pager, Table, Title } from '../ui/components.js';
import { when } from '../ui/format.js';
import { useCan, usePaged } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { PAGE_SIZE } from './vms.js';

/** A policy as the API returned it, back to the spec PUT takes (without the server's fields). */
export function specOf(p: Policy): PolicySpec {
  return {
    name: p.name,
    description: p.description,
    enabled: p.enabled,
    repository: p.repository,
    vms: p.vms,
    rpoHours: p.rpoHours,
    pruneAfterForget: p.pruneAfterForget,
    tags: p.tags,
    ...(p.schedule ? { schedule: p.schedule } : {}),
    ...(p.retention ? { retention: p.retention } : {}),
    ...(p.verify ? { verify: p.verify } : {}),
  };
}

export function PoliciesPage() {
  const canEdit = useCan('operate');
  const [error, setError] = useState<Error | undefined>();
  const [note, setNote] = useState('');
  const [confirm, setConfirm] = useState<string | undefined>();
  const list = usePaged((cursor) => api('get /api/v1/policies', { query: { limit: PAGE_SIZE, cursor } }), []);
  const act = (f: () => Promise<unknown>) => () => {
    setError(undefined);
    f().then(
      () => list.reload(),
      (e: Error) => setError(e),
    );
  };
  return (
    <>
      <Title>Policies</Title>
      {canEdit ? (
        <p>
          <a class="button" id="new-policy" href={href('/policies/edit')}>
            New policy
          </a>
        </p>
      ) : null}
      <ErrorBox error={error} />
      {note ? (
        <p class="ok" role="status" id="policy-note">
          {note}
        </p>
      ) : null}
      <Loaded state={list}>
        {(r) => (
          <Table
            id="policies-table"
            caption="policies"
            head={['Name', 'Repository', 'VMs', 'Schedule', 'Next run', 'RPO', 'Retention', 'Verify', '']}
          >
            {r.items.map((x) => (
              <tr key={x.id} data-policy={x.name} class={x.enabled ? '' : 'disabled'}>
                <td>
                  {x.name}
                  {x.enabled ? null : <span class="muted"> (disabled)</span>}
                  {x.description ? <div class="muted">{x.description}</div> : null}
                </td>
                <td>{x.repository}</td>
                <td class="policy-vms">
                  {x.resolvedVms.vms.map((v) => v.name).join(', ') || '-'}
                  {x.resolvedVms.missing.length ? (
                    <div class="bad">missing: {x.resolvedVms.missing.join(', ')}</div>
                  ) : null}
                </td>
                <td>{x.schedule ?? 'on demand'}</td>
                <td>{when(x.nextRuns.backup)}</td>
                <td>{x.rpoHours} h</td>
                <td class="retention">
                  {x.retention ? (
                    <ul class="keeps">
                      {x.retentionKeeps.map((k) => (
                        <li key={k}>{k}</li>
                      ))}
                      <li class="muted">{x.retentionStatus.status}</li>
                    </ul>
                  ) : (
                    '-'
                  )}
                </td>
                <td>{x.verify ? x.verify.schedule : '-'}</td>
                <td class="actions">
                  {canEdit ? (
                    <>
                      <a class="button secondary edit" href={href('/policies/edit', { id: x.id })}>
                        Edit
                      </a>
                      <button
                        type="button"
                        class="secondary toggle"
                        onClick={act(() =>
                          api('put /api/v1/policies/{id}', {
                            path: { id: x.id },
                            body: { ...specOf(x), enabled: !x.enabled },
                          }),
                        )}
                      >
                        {x.enabled ? 'Disable' : 'Enable'}
                      </button>
                      <button
                        type="button"
                        class="secondary run-now"
                        disabled={!x.enabled}
                        onClick={act(async () => {
                          const j = await api('post /api/v1/jobs', { body: { kind: 'backup', policy: x.id } });
                          setNote(`started ${j.items.length} backup job(s) of policy ${x.name}`);
                          if (j.items.length === 1) go(`/jobs/${j.items[0]!.id}`);
                        })}
                      >
                        Run now
                      </button>
                      {confirm === x.id ? (
                        <button
                          type="button"
                          class="danger confirm-delete"
                          onClick={act(() => api('delete /api/v1/policies/{id}', { path: { id: x.id } }))}
                        >
                          Really delete {x.name}?
                        </button>
                      ) : (
                        <button type="button" class="secondary delete" onClick={() => setConfirm(x.id)}>
                          Delete
                        </button>
                      )}
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
      <Pager id="policies-pager" page={list.page} next={list.next} previous={list.previous} />
    </>
  );
}
