import { optionalGet } from '../api/client.js';
import type { Page, ProxyInfo } from '../api/types.js';
import { Loaded, Table, Title } from '../ui/components.js';
import { useAsync } from '../ui/hooks.js';

const cell = (v: unknown): string =>
  v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);

/** Data movers (GET /api/v1/proxies, a route of a newer server): its columns are whatever fields it reports. */
export function ProxiesPage() {
  const state = useAsync(() => optionalGet('/api/v1/proxies') as Promise<Page<ProxyInfo> | null>, []);
  return (
    <>
      <Title>Proxies</Title>
      <Loaded state={state}>
        {(r) => {
          if (r === null)
            return (
              <p class="muted" id="no-proxies-api">
                no proxies API: this server does not have GET /api/v1/proxies (backups run in the server's built-in
                proxy)
              </p>
            );
          const items = r.items ?? [];
          if (items.length === 0)
            return (
              <p class="muted" id="no-proxies">
                No proxies registered.
              </p>
            );
          const cols = [...new Set(items.flatMap((p) => Object.keys(p)))].slice(0, 10);
          return (
            <Table id="proxies-table" caption="proxies" head={cols}>
              {items.map((p, i) => (
                <tr key={cell(p.id ?? p.name ?? i)} data-proxy={cell(p.name ?? p.id ?? i)}>
                  {cols.map((c) => (
                    <td key={c}>{cell(p[c])}</td>
                  ))}
                </tr>
              ))}
            </Table>
          );
        }}
      </Loaded>
    </>
  );
}
