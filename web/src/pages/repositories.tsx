import { useState } from 'preact/hooks';
import { api, optionalGet } from '../api/client.js';
import type { RepositoryStats } from '../api/types.js';
import { ErrorBox, Loaded, Table, Title } from '../ui/components.js';
import { bytes, when } from '../ui/format.js';
import { useAsync, useCan } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';

/** Fields a newer server may add to a repository (copies, immutability, archive tier): shown when present. */
type Extra = RepositoryStats & {
  copies?: unknown;
  copyOf?: string | null;
  immutability?: unknown;
  immutable?: unknown;
  archive?: unknown;
};
const shown = (v: unknown): string =>
  v === undefined || v === null
    ? 'not reported'
    : typeof v === 'object'
      ? Array.isArray(v)
        ? v.map(shown).join(', ') || 'none'
        : Object.entries(v as Record<string, unknown>)
            .map(([k, x]) => `${k}: ${String(x)}`)
            .join(', ')
      : String(v);

export function RepositoriesPage() {
  const canOperate = useCan('operate');
  const [error, setError] = useState<Error | undefined>();
  const state = useAsync(() => api('get /api/v1/repositories'), []);
  // restore points per repository for each VM: the copies a copy repository holds
  const copies = useAsync(async () => {
    const r = (await optionalGet('/api/v1/restore-points?limit=500')) as {
      items: { id: string; repository: string }[];
    };
    const by = new Map<string, Set<string>>();
    for (const p of r?.items ?? []) by.set(p.id, (by.get(p.id) ?? new Set()).add(p.repository));
    const copied = new Map<string, number>();
    for (const repos of by.values()) if (repos.size > 1) for (const x of repos) copied.set(x, (copied.get(x) ?? 0) + 1);
    return copied;
  }, []);
  const act = (f: () => Promise<{ items: { id: number }[] }>) => () =>
    f().then((r) => go(`/jobs/${r.items[0]!.id}`), setError);
  return (
    <>
      <Title>Repositories</Title>
      <ErrorBox error={error} />
      <Loaded state={state}>
        {(r) => (
          <Table
            id="repos-table"
            caption="repositories"
            head={[
              'Name',
              'Location',
              'Restore points',
              'Storage used',
              'Data referenced',
              'Dedup ratio',
              'Copies',
              'Immutability',
              'Archive',
              'Updated',
              '',
            ]}
          >
            {r.items.map((x: Extra) => (
              <tr key={x.name} data-repo={x.name}>
                <td>
                  <a href={href('/restore-points', { repository: x.name })}>{x.name}</a>
                </td>
                <td class="mono">{x.location}</td>
                <td>{x.points}</td>
                <td class="usage">{bytes(x.storedBytes)}</td>
                <td>{bytes(x.logicalBytes)}</td>
                <td>{x.dedupRatio ? `${x.dedupRatio.toFixed(2)}×` : '-'}</td>
                <td class="copies">
                  {x.copies !== undefined
                    ? shown(x.copies)
                    : `${copies.data?.get(x.name) ?? 0} point(s) also in another repository`}
                </td>
                <td class="immutability">{shown(x.immutability ?? x.immutable)}</td>
                <td class="archive">{shown(x.archive)}</td>
                <td>{x.error ? <span class="bad">{x.error}</span> : when(x.updatedAt)}</td>
                <td class="actions">
                  {canOperate ? (
                    <>
                      <button
                        type="button"
                        class="prune secondary"
                        title="garbage collection: delete chunks no restore point uses"
                        onClick={act(() => api('post /api/v1/jobs', { body: { kind: 'prune', repository: x.name } }))}
                      >
                        Prune
                      </button>
                      <button
                        type="button"
                        class="verify secondary"
                        onClick={act(() =>
                          api('post /api/v1/jobs', {
                            body: { kind: 'verify', repository: x.name, readDataPercent: 0 },
                          }),
                        )}
                      >
                        Verify
                      </button>
                      <button
                        type="button"
                        class="refresh secondary"
                        onClick={() =>
                          api('post /api/v1/repositories/{id}/refresh', { path: { id: x.name } }).then(
                            () => state.reload(),
                            setError,
                          )
                        }
                      >
                        Refresh
                      </button>
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </Table>
        )}
      </Loaded>
    </>
  );
}
