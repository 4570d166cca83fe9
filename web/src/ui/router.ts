import { useEffect, useState } from 'preact/hooks';

export interface Route {
  path: string;
  params: URLSearchParams;
}
const parse = (): Route => {
  const [path, qs] = location.hash.replace(/^#/, '').split('?');
  return { path: path || '/dashboard', params: new URLSearchParams(qs ?? '') };
};

/** The hash route (#/jobs?status=failed); re-renders on every change. */
export function useRoute(): Route {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** `#/path?k=v` from a path and parameters (empty ones left out). */
export function href(path: string, params: Record<string, string | number | null | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return `#${path}${qs ? `?${qs}` : ''}`;
}
export const go = (to: string): void => {
  location.hash = to.replace(/^#/, '');
};
