import { api } from '../api/client.js';
import { Loaded, Pager, Title } from '../ui/components.js';
import { usePaged } from '../ui/hooks.js';
import { VmTable } from './vm-table.js';

export const PAGE_SIZE = 100;

export function VmsPage() {
  const list = usePaged((cursor) => api('get /api/v1/vms', { query: { limit: PAGE_SIZE, cursor } }), []);
  return (
    <>
      <Title>Virtual machines</Title>
      <Loaded state={list}>{(r) => <VmTable vms={r.items} />}</Loaded>
      <Pager id="vms-pager" page={list.page} next={list.next} previous={list.previous} />
    </>
  );
}
