import { useState } from 'preact/hooks';
import { api, download, url } from '../api/client.js';
import type { FileEntry, FindResult, Listing } from '../api/types.js';
import { ErrorBox, Loaded, Table, Title } from '../ui/components.js';
import { bytes, modeString, when } from '../ui/format.js';
import { useAsync, useCan } from '../ui/hooks.js';
import { href } from '../ui/router.js';

/** Guest names are untrusted: Preact only ever makes text nodes and attribute values of them. */
export function FilesPage({ params }: { params: URLSearchParams }) {
  const point = params.get('point') ?? '';
  const repository = params.get('repository') ?? '';
  const disk = Number(params.get('disk') ?? '0');
  const partition = params.get('partition');
  const path = params.get('path') ?? '/';
  const loc = { point, repository, disk };
  return (
    <>
      <Title>
        Files of disk {disk} of restore point {point.slice(0, 12)}
      </Title>
      <p>
        <a href="#/restore-points">← restore points</a>
      </p>
      {partition === null ? <Partitions loc={loc} /> : <Directory loc={loc} partition={partition} path={path} />}
    </>
  );
}

type Loc = {
  point: string;
  repository: string;
  disk: number;
};
const filesOp = (loc: Loc, query: Record<string, string | number | undefined>) =>
  api('get /api/v1/restore-points/{id}/disks/{disk}/files', {
    path: { id: loc.point, disk: loc.disk },
    query: { repository: loc.repository || undefined, ...query },
  });

function Partitions({ loc }: { loc: Loc }) {
  const state = useAsync(() => filesOp(loc, {}), []);
  return (
    <Loaded state={state}>
      {(t) =>
        t.kind !== 'partitions' ? null : (
          <>
            <p class="muted">
              {bytes(t.sizeBytes)},{' '}
              {t.scheme === 'none' ? 'no partition table' : `${t.scheme.toUpperCase()} partition table`}
            </p>
            <Table
              id="partitions-table"
              caption="partitions"
              head={['#', 'Start', 'Size', 'Type', 'Filesystem', 'Name / problem']}
            >
              {t.items.map((p) => (
                <tr key={p.number} data-partition={p.number}>
                  <td>
                    {p.filesystem && !p.problem && !p.container ? (
                      <a class="open-partition" href={href('/files', { ...loc, partition: p.number, path: '/' })}>
                        partition {p.number}
                      </a>
                    ) : (
                      `partition ${p.number}`
                    )}
                  </td>
                  <td>{String(p.startBytes)}</td>
                  <td>{bytes(p.sizeBytes)}</td>
                  <td>{p.type}</td>
                  <td>{p.filesystem ?? (p.container ? '(extended)' : '-')}</td>
                  <td>
                    {p.name ?? ''}
                    {p.problem ? <span class="bad"> {p.problem}</span> : null}
                  </td>
                </tr>
              ))}
            </Table>
          </>
        )
      }
    </Loaded>
  );
}

function Directory({ loc, partition, path }: { loc: Loc; partition: string; path: string }) {
  const canDownload = useCan('restore');
  const [error, setError] = useState<Error | undefined>();
  const [extra, setExtra] = useState<{ items: FileEntry[]; next: string | null } | undefined>();
  const first = useAsync(() => filesOp(loc, { partition, path, limit: 200 }), []);
  const base = `/api/v1/restore-points/{id}/disks/{disk}/files`;
  const q = { repository: loc.repository || undefined, partition };
  const more = async (cursor: string) => {
    try {
      const r = await filesOp(loc, { partition, path, limit: 200, cursor });
      if (r.kind === 'directory') setExtra((x) => ({ items: [...(x?.items ?? []), ...r.items], next: r.nextCursor }));
    } catch (e) {
      setError(e as Error);
    }
  };
  const parts = path.split('/').filter(Boolean);
  const get = (e: FileEntry) =>
    download(url(`${base}/content`, { id: loc.point, disk: loc.disk }, { ...q, path: e.path }), e.name).catch(setError);
  return (
    <>
      <nav id="breadcrumbs" class="row" aria-label="path">
        <a href={href('/files', loc)}>disk {loc.disk}</a> ›{' '}
        <a href={href('/files', { ...loc, partition, path: '/' })}>partition {partition} /</a>
        {parts.map((name, i) => (
          <span key={`${i}/${name}`}>
            {' '}
            › <a href={href('/files', { ...loc, partition, path: `/${parts.slice(0, i + 1).join('/')}` })}>{name}</a>
          </span>
        ))}
      </nav>
      <Loaded state={first}>
        {(r: Listing) => {
          if (r.kind === 'partitions') return null;
          const items = r.kind === 'directory' ? [...r.items, ...(extra?.items ?? [])] : [r.entry];
          const next = extra ? extra.next : r.nextCursor;
          return (
            <>
              <p class="muted">
                {r.filesystem}
                {r.kind === 'directory' ? `, ${r.total} ${r.total === 1 ? 'entry' : 'entries'}` : ''}
              </p>
              {r.warnings.length ? <p class="warn">{r.warnings.join('; ')}</p> : null}
              <ErrorBox error={error} />
              {r.kind === 'directory' ? (
                <FileTools loc={loc} partition={partition} path={path} canDownload={canDownload} onError={setError} />
              ) : null}
              <Table id="files-table" caption={`files in ${path}`} head={['Name', 'Mode', 'Size', 'Modified', '']}>
                {items.map((e) => (
                  <tr key={e.path} data-name={e.name}>
                    <td class="name">
                      {e.type === 'dir' ? (
                        <a class="open-dir" href={href('/files', { ...loc, partition, path: e.path })}>
                          {e.name}
                        </a>
                      ) : (
                        e.name
                      )}
                      {e.type === 'symlink' && e.linkTarget !== undefined ? (
                        <span class="muted"> → {e.linkTarget}</span>
                      ) : null}
                      {e.error ? <div class="bad">{`${e.error.code}: ${e.error.message}`}</div> : null}
                    </td>
                    <td class="mode">{e.error ? '?' : modeString(e.type, e.mode)}</td>
                    <td class="size">{e.type === 'file' ? bytes(e.size) : ''}</td>
                    <td>{when(e.mtime)}</td>
                    <td>
                      {e.type === 'file' && canDownload && !e.error ? (
                        <button type="button" class="secondary download" onClick={() => void get(e)}>
                          Download
                        </button>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </Table>
              {next && r.kind === 'directory' ? (
                <p>
                  <button type="button" class="secondary" id="more" onClick={() => void more(next)}>
                    Show more ({items.length} of {r.total})
                  </button>
                </p>
              ) : null}
            </>
          );
        }}
      </Loaded>
    </>
  );
}

/**
 * The file browser's tools for the directory shown: search (a path or glob, from this directory down unless it
 * starts with /), compare with another restore point, and download of the directory as tar.
 */
function FileTools({
  loc,
  partition,
  path,
  canDownload,
  onError,
}: {
  loc: Loc;
  partition: string;
  path: string;
  canDownload: boolean;
  onError: (e: Error) => void;
}) {
  const [pattern, setPattern] = useState('');
  const [found, setFound] = useState<{ full: string; r: FindResult } | Error | 'busy' | undefined>();
  const [other, setOther] = useState('');
  const [diff, setDiff] = useState<DiffResult | Error | 'busy' | undefined>();
  const p = { id: loc.point, disk: loc.disk };
  const repository = loc.repository || undefined;
  const find = async () => {
    const v = pattern.trim();
    if (!v) return;
    const full = v.startsWith('/') ? v : `${path === '/' ? '' : path}/**/${v}`;
    setFound('busy');
    try {
      const r = await api('get /api/v1/restore-points/{id}/disks/{disk}/find', {
        path: p,
        query: { repository, partition, pattern: full },
      });
      setFound({ full, r });
    } catch (e) {
      setFound(e as Error);
    }
  };
  const compare = async () => {
    const o = other.trim();
    if (!o) return;
    setDiff('busy');
    try {
      const r = await api('get /api/v1/restore-points/{id}/disks/{disk}/diff', {
        path: p,
        query: { repository, partition, path, other: o },
      });
      setDiff(r as DiffResult);
    } catch (e) {
      setDiff(e as Error);
    }
  };
  const tar = () =>
    download(
      url('/api/v1/restore-points/{id}/disks/{disk}/files/archive', p, { repository, partition, path }),
      `${path.split('/').filter(Boolean).at(-1) ?? 'root'}.tar`,
    ).catch(onError);
  return (
    <div id="file-tools">
      <form
        class="row"
        aria-label="find and compare"
        onSubmit={(e) => {
          e.preventDefault();
          void find();
        }}
      >
        <input
          id="find-pattern"
          type="search"
          placeholder="find: name, glob (*.conf) or /full/path/**"
          aria-label="find files"
          value={pattern}
          onInput={(e) => setPattern(e.currentTarget.value)}
        />
        <button id="find-go" type="submit" class="secondary">
          Find
        </button>
        <input
          id="diff-other"
          placeholder="other restore point id"
          aria-label="compare with restore point"
          value={other}
          onInput={(e) => setOther(e.currentTarget.value)}
        />
        <button id="diff-go" type="button" class="secondary" onClick={() => void compare()}>
          Compare
        </button>
        {canDownload ? (
          <button id="download-tar" type="button" class="secondary" onClick={() => void tar()}>
            Download directory (tar)
          </button>
        ) : null}
      </form>
      <div id="find-results" aria-live="polite">
        {found === 'busy' ? <p class="muted">searching…</p> : null}
        {found instanceof Error ? <ErrorBox error={found} /> : null}
        {found && typeof found === 'object' && !(found instanceof Error) ? (
          <>
            <p class="muted">
              {found.r.items.length} match{found.r.items.length === 1 ? '' : 'es'} for {found.full},{' '}
              {found.r.entriesWalked} entries walked
            </p>
            {found.r.notes.length ? (
              <p class="warn" id="find-notes">
                {found.r.notes.join('; ')}
              </p>
            ) : null}
            <Table id="find-table" caption="search results" head={['Path', 'Size', 'Modified']}>
              {found.r.items.map((m) => {
                const dirOf = m.path.slice(0, m.path.lastIndexOf('/')) || '/';
                return (
                  <tr key={m.path} data-path={m.path}>
                    <td>
                      <a class="open-found" href={href('/files', { ...loc, partition, path: dirOf })}>
                        {m.path}
                      </a>
                    </td>
                    <td>{m.type === 'file' ? bytes(m.size) : m.type}</td>
                    <td>{when(m.mtime)}</td>
                  </tr>
                );
              })}
            </Table>
          </>
        ) : null}
      </div>
      <div id="diff-results" aria-live="polite">
        {diff === 'busy' ? <p class="muted">comparing…</p> : null}
        {diff instanceof Error ? <ErrorBox error={diff} /> : null}
        {diff && typeof diff === 'object' && !(diff instanceof Error) ? <Diff r={diff} /> : null}
      </div>
    </div>
  );
}

interface DiffChange {
  path: string;
  change: 'added' | 'removed' | 'changed';
  sizeA?: number;
  sizeB?: number;
  fields?: string[];
}
interface DiffResult {
  a: { id: string };
  b: { id: string };
  counts: { added: number; removed: number; changed: number };
  notes: string[];
  volumes: { changes: DiffChange[] }[];
}
const SIGN = { added: '+', removed: '−', changed: '~' } as const;

function Diff({ r }: { r: DiffResult }) {
  const changes = r.volumes.flatMap((v) => v.changes);
  return (
    <>
      <p class="muted">
        {`${r.counts.added} added, ${r.counts.removed} removed, ${r.counts.changed} changed `}
        {`from ${r.a.id.slice(0, 12)} to ${r.b.id.slice(0, 12)}`}
      </p>
      {r.notes.length ? <p class="warn">{r.notes.join('; ')}</p> : null}
      <Table id="diff-table" caption="differences" head={['', 'Path', 'Size', 'What']}>
        {changes.map((c) => (
          <tr key={c.path} data-path={c.path} data-change={c.change}>
            <td>{SIGN[c.change]}</td>
            <td>{c.path}</td>
            <td>
              {c.change === 'added'
                ? bytes(c.sizeB)
                : c.change === 'removed'
                  ? bytes(c.sizeA)
                  : c.sizeA === c.sizeB
                    ? bytes(c.sizeB)
                    : `${bytes(c.sizeA)} → ${bytes(c.sizeB)}`}
            </td>
            <td>{(c.fields ?? []).join(', ')}</td>
          </tr>
        ))}
      </Table>
    </>
  );
}
