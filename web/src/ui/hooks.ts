import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useState } from 'preact/hooks';
import type { Me, Page, Role } from '../api/types.js';

/** who is logged in (the console renders nothing but the login page without it) */
export const MeContext = createContext<Me | null>(null);
export const useMe = (): Me | null => useContext(MeContext);

const RANK: Record<Role, number> = { viewer: 0, 'restore-operator': 1, operator: 2, admin: 3 };
/** may this principal do it: operate (backups, prune, cancel), restore, admin (users, tokens, audit) */
export function useCan(what: 'operate' | 'restore' | 'admin'): boolean {
  const me = useMe();
  if (!me) return false;
  if (what === 'restore') return RANK[me.role] >= 1;
  if (what === 'operate') return RANK[me.role] >= 2;
  return me.role === 'admin';
}

export interface Async<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}
/** Runs `load` when `deps` change (and on reload()); the newest answer wins. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: Error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/**
 * Cursor paging over a list operation: `fetchPage(cursor)` gives one page; Next/Previous walk a stack of cursors,
 * so lists go beyond any one page (the API pages at most 500 items).
 */
export function usePaged<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>, deps: unknown[]) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  // a new filter starts at the first page
  useEffect(() => setCursors([undefined]), deps);
  const cursor = cursors[cursors.length - 1];
  const r = useAsync(() => fetchPage(cursor), [...deps, cursor]);
  return {
    ...r,
    page: cursors.length,
    next: r.data?.nextCursor ? () => setCursors((c) => [...c, r.data!.nextCursor!]) : undefined,
    previous: cursors.length > 1 ? () => setCursors((c) => c.slice(0, -1)) : undefined,
  };
}
