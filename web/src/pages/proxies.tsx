import { useState } from 'preact/hooks';
import { api } from '../api/client.js';
import type { ProxyInfo } from '../api/types.js';
import { ErrorBox, Loaded, Table, Title } from '../ui/components.js';
import { when } from '../ui/format.js';
import { useAsync, useCan } from '../ui/hooks.js';

const list = (v: string[] | null): string => (v === null ? 'any' : v.length === 0 ? 'none' : v.join(', '));
const reaches = ({ capabilities: c }: ProxyInfo): string =>
  `repositories ${list(c.repositories)}; vCenters ${list(c.vcenters)}; clusters ${list(c.clusters)}; ` +
  `datastores ${list(c.datastores)}`;

/**
 * Data movers (GET /api/v1/proxies): each `coffer proxy` and each server's built-in one, with its state, load,
 * capabilities, version and last heartbeat; an operator drains one for maintenance (it finishes its running jobs and
 * takes no new ones) and puts it back.
 */
export function ProxiesPage() {
  const [reload, setReload] = useState(0);
  const [error, setError] = useState<Error | undefined>();
  const canOperate = useCan('operate');
  const state = useAsync(() => api('get /api/v1/proxies'), [reload]);
  const act = (id: string, op: 'drain' | 'undrain') => async () => {
    try {
      await api(`post /api/v1/proxies/{id}/${op}`, { path: { id } });
      setReload((n) => n + 1);
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <>
      <Title>Proxies</Title>
      <ErrorBox error={error} />
      <Loaded state={state}>
        {(r) =>
          r.items.length === 0 ? (
            <p class="muted" id="no-proxies">
              No proxies registered: jobs wait until one registers (the server runs none of its own: --no-local-proxy).
            </p>
          ) : (
            <Table
              id="proxies-table"
              caption="proxies"
              head={['Name', 'State', 'Load', 'Job kinds', 'Transports', 'Reaches', 'Version', 'Last heartbeat', '']}
            >
              {r.items.map((p: ProxyInfo) => (
                <tr key={p.owner} data-proxy={p.name} data-state={p.state}>
                  <td>
                    {p.name}
                    {p.local ? <span class="muted"> (built-in)</span> : null}
                  </td>
                  <td class={`proxy-state ${p.state === 'offline' ? 'bad' : p.state === 'online' ? 'ok' : 'warn'}`}>
                    {p.state}
                  </td>
                  <td>
                    {p.running} / {p.concurrency}
                    {p.jobs.length > 0 ? (
                      <span class="muted">
                        {' '}
                        (jobs{' '}
                        {p.jobs.map((id, i) => (
                          <span key={id}>
                            {i > 0 ? ', ' : ''}
                            <a href={`#/jobs/${id}`}>{id}</a>
                          </span>
                        ))}
                        )
                      </span>
                    ) : null}
                  </td>
                  <td>{p.capabilities.kinds.join(', ')}</td>
                  <td>{p.capabilities.transports.join(', ')}</td>
                  <td>{reaches(p)}</td>
                  <td>{p.version}</td>
                  <td>{when(p.lastHeartbeat)}</td>
                  <td class="actions">
                    {canOperate ? (
                      <button
                        type="button"
                        class="secondary"
                        aria-label={`${p.drained ? 'undrain' : 'drain'} ${p.name}`}
                        onClick={act(p.owner, p.drained ? 'undrain' : 'drain')}
                      >
                        {p.drained ? 'Undrain' : 'Drain'}
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </Table>
          )
        }
      </Loaded>
    </>
  );
}
