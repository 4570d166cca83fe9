import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import type { Async } from './hooks.js';

export function ErrorBox({ error, id }: { error: Error | string | undefined; id?: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert" id={id}>
      {typeof error === 'string' ? error : error.message}
    </p>
  );
}

/** A page's title; focused when the page changes so screen readers announce it. */
export function Title({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h2 tabIndex={-1} ref={ref}>
      {children}
    </h2>
  );
}

/** Renders `children(data)` once loaded; a loading line or the error otherwise. */
export function Loaded<T>({ state, children }: { state: Async<T>; children: (data: T) => ComponentChildren }) {
  if (state.error) return <ErrorBox error={state.error} />;
  if (state.data === undefined)
    return (
      <p class="muted" aria-busy="true">
        Loading…
      </p>
    );
  return <>{children(state.data)}</>;
}

export function Card({ label, value, cls }: { label: string; value: ComponentChildren; cls?: string }) {
  return (
    <div class="card">
      <div class="label">{label}</div>
      <div class={`value ${cls ?? ''}`}>{value}</div>
    </div>
  );
}

/** Previous / next page of a cursor-paged list. */
export function Pager({
  id,
  page,
  next,
  previous,
}: {
  id: string;
  page: number;
  next?: () => void;
  previous?: () => void;
}) {
  if (!next && !previous) return null;
  return (
    <nav class="row pager" id={id} aria-label="pages">
      <button type="button" class="secondary prev" disabled={!previous} onClick={previous}>
        ← Previous
      </button>
      <span class="muted">page {page}</span>
      <button type="button" class="secondary next" disabled={!next} onClick={next}>
        Next →
      </button>
    </nav>
  );
}

/** A table with a caption for screen readers and a header row. */
export function Table({
  id,
  caption,
  head,
  children,
}: {
  id: string;
  caption: string;
  head: string[];
  children: ComponentChildren;
}) {
  return (
    <div class="table-wrap">
      <table id={id}>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A labelled form field (the label is tied to the control by id). */
export function Field({
  id,
  label,
  hint,
  error,
  children,
}: {
  id: string;
  label: string;
  hint?: string;
  error?: string | undefined;
  children: ComponentChildren;
}) {
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children}
      {hint ? (
        <div class="hint muted" id={`${id}-hint`}>
          {hint}
        </div>
      ) : null}
      {error ? (
        <div class="field-error" id={`${id}-error`} role="alert">
          {error}
        </div>
      ) : null}
    </div>
  );
}

/** A checkbox with its label beside it (one clickable unit). */
export function Check({
  id,
  label,
  checked,
  onChange,
}: {
  id: string;
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
}) {
  return (
    <label class="check" for={id}>
      <input
        type="checkbox"
        id={id}
        name={id}
        checked={checked}
        onChange={(e) => onChange((e.currentTarget as HTMLInputElement).checked)}
      />
      <span>{label}</span>
    </label>
  );
}
