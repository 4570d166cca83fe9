import { useState } from 'preact/hooks';
import { api, ApiError, authHeaders } from '../api/client.js';
import { type Capabilities, loadCapabilities } from '../api/capabilities.js';
import type { Job, RestorePoint } from '../api/types.js';
import { Check, ErrorBox, Field, Loaded, Title } from '../ui/components.js';
import { bytes, when } from '../ui/format.js';
import { useAsync } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { SchemaFields } from '../ui/schema-form.js';

type Mode = 'vm-new' | 'vm-in-place' | 'disk' | 'instant' | 'files';
const MODES: { mode: Mode; label: string; what: string }[] = [
  { mode: 'vm-new', label: 'Whole VM to vCenter, as a new VM', what: 'a new VM from every disk and the configuration' },
  { mode: 'vm-in-place', label: 'Whole VM to vCenter, in place', what: 'overwrites the original VM (it must be off)' },
  { mode: 'disk', label: 'Single disk to a file', what: "one disk as an image below the server's restore directory" },
  { mode: 'instant', label: 'Instant recovery', what: 'runs the VM from the repository at once, then stops it' },
  { mode: 'files', label: 'Files and folders', what: 'browse or search the guest file system, download files' },
];

/** Why a mode is not offered on this server, or undefined when it is. */
function unavailable(mode: Mode, caps: Capabilities): string | undefined {
  if (mode === 'vm-new' || mode === 'vm-in-place')
    return caps.jobKinds.has('restore-vm')
      ? undefined
      : 'this server has no whole-VM restore job (POST /api/v1/jobs kind "restore-vm"); ' +
          'use `coffer restore --to vsphere://…`';
  if (mode === 'instant')
    return caps.instantRecovery
      ? undefined
      : 'this server has no instant recovery route in its API; use `coffer mount` (NBD export of the point)';
  if (mode === 'disk') return caps.jobKinds.has('restore') ? undefined : 'this server has no disk restore job';
  return undefined;
}

/**
 * The restore wizard: 1 restore point (any repository holding it, a copy repository included), 2 kind of restore,
 * 3 options, then the job. Kinds the server's API lacks are shown with the reason and cannot be chosen.
 */
export function RestoreWizard({ params }: { params: URLSearchParams }) {
  const pointId = params.get('point') ?? '';
  const vm = params.get('vm') ?? '';
  const [repository, setRepository] = useState(params.get('repository') ?? '');
  const [step, setStep] = useState(pointId ? 2 : 1);
  const [mode, setMode] = useState<Mode>('disk');
  const state = useAsync(async () => {
    const caps = await loadCapabilities();
    if (!pointId) return { caps, point: undefined, copies: [] as RestorePoint[] };
    // the point and its copies: the same id in other repositories (a copy keeps the point's id)
    const copies: RestorePoint[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 20; i++) {
      const r = await api('get /api/v1/restore-points', { query: { limit: 500, vm: vm || undefined, cursor } });
      copies.push(...r.items.filter((p) => p.id === pointId));
      if (!r.nextCursor) break;
      cursor = r.nextCursor;
    }
    return { caps, point: copies.find((p) => p.repository === repository) ?? copies[0], copies };
  }, [pointId, repository, vm]);
  return (
    <>
      <Title>Restore</Title>
      <ol class="steps" aria-label="steps">
        {['Restore point', 'Kind of restore', 'Options'].map((s, i) => (
          <li key={s} class={step === i + 1 ? 'current' : ''} aria-current={step === i + 1 ? 'step' : undefined}>
            {s}
          </li>
        ))}
      </ol>
      <Loaded state={state}>
        {({ caps, point, copies }) =>
          step === 1 || !point ? (
            <PickPoint />
          ) : (
            <>
              <p class="muted" id="wizard-point">
                {point.vm}, {when(point.time)} ({point.mode}), restore point {point.id.slice(0, 12)} in repository{' '}
                {point.repository}
              </p>
              {copies.length > 1 ? (
                <div class="field">
                  <label for="source-repo">Restore from repository (a copy repository for disaster recovery)</label>
                  <select
                    id="source-repo"
                    value={point.repository}
                    onChange={(e) => setRepository(e.currentTarget.value)}
                  >
                    {copies.map((c) => (
                      <option key={c.repository} value={c.repository}>
                        {c.repository}
                      </option>
                    ))}
                  </select>
                </div>
              ) : null}
              {step === 2 ? (
                <fieldset class="modes">
                  <legend>What to restore</legend>
                  {MODES.map((m) => {
                    const why = unavailable(m.mode, caps);
                    return (
                      <label key={m.mode} class={`mode${why ? ' unavailable' : ''}`} for={`mode-${m.mode}`}>
                        <input
                          type="radio"
                          name="mode"
                          id={`mode-${m.mode}`}
                          value={m.mode}
                          checked={mode === m.mode}
                          disabled={Boolean(why)}
                          aria-describedby={`mode-${m.mode}-what`}
                          onChange={() => setMode(m.mode)}
                        />
                        <span>
                          <strong>{m.label}</strong>
                          <span class="muted" id={`mode-${m.mode}-what`}>
                            {' '}
                            — {why ? `not available: ${why}` : m.what}
                          </span>
                        </span>
                      </label>
                    );
                  })}
                  <p class="row">
                    <button
                      type="button"
                      class="secondary"
                      onClick={() => go(href('/restore-points', { vm: point.vm }))}
                    >
                      Back
                    </button>
                    <button type="button" id="wizard-next" onClick={() => setStep(3)}>
                      Next
                    </button>
                  </p>
                </fieldset>
              ) : (
                <Options mode={mode} point={point} caps={caps} back={() => setStep(2)} />
              )}
            </>
          )
        }
      </Loaded>
    </>
  );
}

/** Step 1 without a point: pick a VM, then one of its restore points. */
function PickPoint() {
  const [vm, setVm] = useState('');
  const vms = useAsync(() => api('get /api/v1/vms', { query: { limit: 500 } }), []);
  const points = useAsync(
    () => (vm ? api('get /api/v1/restore-points', { query: { limit: 100, vm } }) : Promise.resolve(undefined)),
    [vm],
  );
  return (
    <div class="stack">
      <Field id="pick-vm" label="VM">
        <select id="pick-vm" value={vm} onChange={(e) => setVm(e.currentTarget.value)}>
          <option value="">choose a VM</option>
          {vms.data?.items
            .filter((v) => v.points > 0)
            .map((v) => (
              <option key={v.name} value={v.name}>
                {v.name}
              </option>
            ))}
        </select>
      </Field>
      <ul id="pick-points">
        {points.data?.items.map((p) => (
          <li key={`${p.repository}/${p.id}`}>
            <a href={href('/restore', { point: p.id, repository: p.repository, vm: p.vm })}>
              {when(p.time)} — {p.repository} ({p.mode})
            </a>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Options({
  mode,
  point,
  caps,
  back,
}: {
  mode: Mode;
  point: RestorePoint;
  caps: Capabilities;
  back: () => void;
}) {
  if (mode === 'files')
    return (
      <div class="stack" id="wizard-files">
        <p>Open a disk's file browser: browse directories, search by name or glob, download files or a directory.</p>
        <ul>
          {point.disks.map((d) => (
            <li key={d.index}>
              <a class="browse" href={href('/files', { point: point.id, repository: point.repository, disk: d.index })}>
                disk {d.index} ({bytes(d.sizeBytes)})
              </a>
            </li>
          ))}
        </ul>
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
      </div>
    );
  if (mode === 'disk') return <DiskOptions point={point} caps={caps} back={back} />;
  if (mode === 'instant') return <InstantOptions point={point} caps={caps} back={back} />;
  return <VmOptions point={point} caps={caps} inPlace={mode === 'vm-in-place'} back={back} />;
}

function DiskOptions({ point, caps, back }: { point: RestorePoint; caps: Capabilities; back: () => void }) {
  const formats = caps.jobKinds.get('restore')?.properties?.format?.enum?.map(String) ?? ['raw'];
  const [disk, setDisk] = useState(point.disks[0]?.index ?? 0);
  const [format, setFormat] = useState(formats[0] ?? 'raw');
  const [target, setTarget] = useState(`${point.vm}-${point.id.slice(0, 8)}-disk${point.disks[0]?.index ?? 0}.raw`);
  const [force, setForce] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const body = { kind: 'restore' as const, repository: point.repository, pointId: point.id, disk, target, force };
      const r = await api('post /api/v1/jobs', {
        body: formats.length > 1 ? ({ ...body, format } as typeof body) : body,
      });
      go(`/jobs/${r.items[0]!.id}`);
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <form class="stack" id="restore-form" onSubmit={submit}>
      <h3>Restore one disk of {point.vm} to a file</h3>
      <Field id="disk" label="Disk">
        <select
          id="disk"
          value={disk}
          onChange={(e) => {
            const d = Number(e.currentTarget.value);
            setDisk(d);
            setTarget(`${point.vm}-${point.id.slice(0, 8)}-disk${d}.${format === 'raw' ? 'raw' : format}`);
          }}
        >
          {point.disks.map((d) => (
            <option key={d.index} value={d.index}>
              disk {d.index} ({bytes(d.sizeBytes)})
            </option>
          ))}
        </select>
      </Field>
      <Field
        id="format"
        label="Export format"
        hint={
          formats.length > 1
            ? undefined
            : 'this server writes raw images only (its API offers no format choice); ' +
              '`coffer restore --format qcow2|vmdk|vhdx` converts'
        }
      >
        <select
          id="format"
          value={format}
          disabled={formats.length < 2}
          onChange={(e) => setFormat(e.currentTarget.value)}
        >
          {formats.map((f) => (
            <option key={f} value={f}>
              {f}
            </option>
          ))}
        </select>
      </Field>
      <Field id="target" label="Target file (below the server's restore directory)">
        <input id="target" name="target" required value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
      </Field>
      <Check id="force" label="Overwrite an existing file" checked={force} onChange={setForce} />
      <ErrorBox error={error} />
      <p class="row">
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
        <button type="submit">Start restore</button>
      </p>
    </form>
  );
}

/** Whole VM: the fields of the server's `restore-vm` job kind, from its schema (new name, or in place). */
function VmOptions({
  point,
  caps,
  inPlace,
  back,
}: {
  point: RestorePoint;
  caps: Capabilities;
  inPlace: boolean;
  back: () => void;
}) {
  const schema = caps.jobKinds.get('restore-vm')!;
  const [value, setValue] = useState<Record<string, unknown>>(inPlace ? { force: true } : {});
  const [error, setError] = useState<Error | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const body = { ...value, kind: 'restore-vm', repository: point.repository, pointId: point.id };
      const r = await api('post /api/v1/jobs', { body: body as never });
      go(`/jobs/${r.items[0]!.id}`);
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <form class="stack" id="restore-vm-form" onSubmit={submit}>
      <h3>
        Restore {point.vm} to vCenter {inPlace ? 'in place' : 'as a new VM'}
      </h3>
      <SchemaFields
        prefix="vm"
        schema={schema}
        value={value}
        onChange={setValue}
        fixed={['kind', 'repository', 'pointId']}
      />
      <ErrorBox error={error} />
      <p class="row">
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
        <button type="submit">Start restore</button>
      </p>
    </form>
  );
}

/** Instant recovery: start with the server's route (fields from its schema), stop with its DELETE route. */
function InstantOptions({ point, caps, back }: { point: RestorePoint; caps: Capabilities; back: () => void }) {
  const ir = caps.instantRecovery!;
  const [value, setValue] = useState<Record<string, unknown>>({});
  const [started, setStarted] = useState<{ id?: string | number } | Job | undefined>();
  const [error, setError] = useState<Error | undefined>();
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(path, {
      method,
      headers: { ...authHeaders(), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const data = (await r.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    if (!r.ok) throw new ApiError(r.status, data.error ?? { code: `HTTP_${r.status}`, message: 'failed' });
    return data as { id?: string | number };
  };
  const start = async (e: Event) => {
    e.preventDefault();
    try {
      setStarted(await call('POST', ir.start, { ...value, repository: point.repository, pointId: point.id }));
    } catch (x) {
      setError(x as Error);
    }
  };
  const stop = async () => {
    try {
      if (!ir.stop || started?.id === undefined) return;
      await call('DELETE', ir.stop.replace(/\{[^}]+\}/, encodeURIComponent(String(started.id))));
      setStarted(undefined);
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <form class="stack" id="instant-form" onSubmit={start}>
      <h3>Instant recovery of {point.vm}</h3>
      {ir.startSchema ? (
        <SchemaFields
          prefix="ir"
          schema={ir.startSchema}
          value={value}
          onChange={setValue}
          fixed={['repository', 'pointId']}
        />
      ) : null}
      <ErrorBox error={error} />
      <p class="row">
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
        {started ? (
          <button type="button" id="instant-stop" onClick={() => void stop()} disabled={!ir.stop}>
            Stop instant recovery
          </button>
        ) : (
          <button type="submit">Start instant recovery</button>
        )}
      </p>
    </form>
  );
}
