import type { Paths } from './openapi.gen.js';
import type { ApiErrorBody, Responses } from './types.js';

/** An API error: the server's `{error: {code, message}}`, shown as `CODE: message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(`${body.code}: ${body.message}`);
  }
}

type Method = 'get' | 'post' | 'put' | 'delete';
/** The operations of a method: "get /api/v1/vms" ... (only those the OpenAPI document has). */
type Op = { [P in keyof Paths]: { [M in keyof Paths[P] & Method]: `${M} ${P}` }[keyof Paths[P] & Method] }[keyof Paths];
type PathOf<O> = O extends `${string} ${infer P}` ? (P extends keyof Paths ? P : never) : never;
type MethodOf<O> = O extends `${infer M} ${string}` ? M : never;
type Spec<O extends Op> = Paths[PathOf<O>][MethodOf<O> & keyof Paths[PathOf<O>]];
type Field<S, K extends string> = S extends Record<K, infer T> ? T : never;
export type Request<O extends Op> = {
  path?: Field<Spec<O>, 'path'>;
  query?: Field<Spec<O>, 'query'>;
} & ([Field<Spec<O>, 'body'>] extends [never] ? { body?: undefined } : { body: Field<Spec<O>, 'body'> });
export type Answer<O extends Op> = O extends keyof Responses ? Responses[O] : unknown;

const TOKEN_KEY = 'coffer-token';
let token: string | null = sessionStorage.getItem(TOKEN_KEY);
let onUnauthenticated: () => void = () => {};

export const session = {
  get token(): string | null {
    return token;
  },
  set(t: string | null): void {
    token = t;
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  onExpired(f: () => void): void {
    onUnauthenticated = f;
  },
};

/** The URL of an operation with its path parameters filled in and its query string. */
export function url(path: string, params?: Record<string, unknown>, query?: Record<string, unknown>): string {
  const p = path.replace(/\{([A-Za-z]+)\}/g, (_m, k: string) => encodeURIComponent(String(params?.[k] ?? '')));
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return qs ? `${p}?${qs}` : p;
}

export const authHeaders = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

async function failure(r: Response): Promise<ApiError> {
  const data = (await r.json().catch(() => ({}))) as { error?: ApiErrorBody };
  return new ApiError(r.status, data.error ?? { code: `HTTP_${r.status}`, message: r.statusText || 'request failed' });
}

/** Calls one operation of the API, typed by the OpenAPI document (request) and Responses (answer). */
export async function api<O extends Op>(op: O, req?: Request<O>): Promise<Answer<O>> {
  const [method, path] = op.split(' ') as [Method, string];
  const r = await fetch(url(path, req?.path as Record<string, unknown>, req?.query as Record<string, unknown>), {
    method: method.toUpperCase(),
    headers: { ...authHeaders(), ...(req?.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(req?.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
  });
  if (r.status === 401 && path !== '/api/v1/auth/login') {
    onUnauthenticated();
    throw new ApiError(401, { code: 'UNAUTHENTICATED', message: 'session expired: please log in again' });
  }
  if (!r.ok) throw await failure(r);
  return (await r.json().catch(() => ({}))) as Answer<O>;
}

/** A GET that may not exist on this server (a route another version adds): null on 404 NOT_FOUND. */
export async function optionalGet(path: string): Promise<unknown> {
  const r = await fetch(path, { headers: authHeaders() });
  if (r.status === 404) return null;
  if (!r.ok) throw await failure(r);
  return r.json();
}

/** Fetches with the bearer token (never in the URL) and hands the body to the browser as a download. */
export async function download(href: string, name: string): Promise<void> {
  const r = await fetch(href, { headers: authHeaders() });
  if (!r.ok) throw await failure(r);
  const blobUrl = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = blobUrl;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
}

/** Server-Sent Events read with fetch (the token goes in a header): calls `on` per event until the stream ends. */
export async function events(
  path: string,
  on: (event: string, data: unknown) => void,
  signal: AbortSignal,
): Promise<void> {
  const r = await fetch(path, { headers: authHeaders(), signal });
  if (!r.ok || !r.body) throw await failure(r);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev && data) on(ev, JSON.parse(data));
    }
  }
}
