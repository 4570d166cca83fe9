import { useState } from 'preact/hooks';
import { api, optionalGet } from '../api/client.js';
import { type Capabilities, loadCapabilities } from '../api/capabilities.js';
import type { RestorePoint } from '../api/types.js';
import { Check, ErrorBox, Field, Loaded, Title } from '../ui/components.js';
import { bytes, when } from '../ui/format.js';
import { useAsync } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';
import { VmRestoreForm } from './restore-vm-form.js';

type Mode = 'vm-new' | 'vm-in-place' | 'disk' | 'instant' | 'files';
const MODES: { mode: Mode; label: string; what: string }[] = [
  { mode: 'vm-new', label: 'Whole VM to vCenter, as a new VM', what: 'a new VM from every disk and the configuration' },
  { mode: 'vm-in-place', label: 'Whole VM to vCenter, in place', what: 'overwrites the original VM (it must be off)' },
  { mode: 'disk', label: 'Single disk to a file', what: "one disk as an image below the server's restore directory" },
  { mode: 'instant', label: 'Instant recovery', what: 'runs the VM from the repository at once, then stops it' },
  { mode: 'files', label: 'Files and folders', what: 'browse or search the guest file system, download files' },
];

/** Why a mode is not offered on this server, or undefined when it is. */
function unavailable(mode: Mode, caps: Capabilities, vcenters: number): string | undefined {
  if (mode === 'vm-new' || mode === 'vm-in-place') {
    if (!caps.jobKinds.has('restore-vm'))
      return (
        'this server has no whole-VM restore job (POST /api/v1/jobs kind "restore-vm"); ' +
        'use `coffer restore --to vsphere://…`'
      );
    return vcenters > 0
      ? undefined
      : 'no vCenter is configured on this server (the restore-vm job restores into configured vCenters)';
  }
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
    const vcenters = caps.has('get', '/api/v1/vcenters')
      ? (((await optionalGet('/api/v1/vcenters')) as { items: unknown[] } | null)?.items.length ?? 0)
      : 0;
    if (!pointId) return { caps, vcenters, point: undefined, copies: [] as RestorePoint[] };
    // the point and its copies: the same id in other repositories (a copy keeps the point's id)
    const copies: RestorePoint[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 20; i++) {
      const r = await api('get /api/v1/restore-points', { query: { limit: 500, vm: vm || undefined, cursor } });
      copies.push(...r.items.filter((p) => p.id === pointId));
      if (!r.nextCursor) break;
      cursor = r.nextCursor;
    }
    return { caps, vcenters, point: copies.find((p) => p.repository === repository) ?? copies[0], copies };
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
        {({ caps, vcenters, point, copies }) =>
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
                    const why = unavailable(m.mode, caps, vcenters);
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
  if (mode === 'instant') return <InstantOptions point={point} back={back} />;
  return <VmRestoreForm point={point} inPlace={mode === 'vm-in-place'} back={back} />;
}

const FORMAT_LABELS: Record<string, string> = {
  raw: 'raw (a plain image)',
  qcow2: 'qcow2 (QEMU/KVM)',
  vmdk: 'vmdk streamOptimized (vSphere, OVF)',
  vhdx: 'vhdx dynamic (Hyper-V, Azure after conversion)',
};

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
          onChange={(e) => {
            const f = e.currentTarget.value;
            setFormat(f);
            // the file name follows the format while it ends with one of the formats' extensions
            setTarget((t) => t.replace(/\.(raw|qcow2|vmdk|vhdx)$/, `.${f}`));
          }}
        >
          {formats.map((f) => (
            <option key={f} value={f}>
              {FORMAT_LABELS[f] ?? f}
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

/**
 * Instant recovery: one disk of the point served over NBD by the server (POST /api/v1/instant-recoveries), shown with
 * its nbd:// URI (attach it with qemu, nbdcopy, or mount it on a Linux host); stopped here (DELETE).
 */
function InstantOptions({ point, back }: { point: RestorePoint; back: () => void }) {
  const [disk, setDisk] = useState(point.disks[0]?.index ?? 0);
  const [writable, setWritable] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const running = useAsync(() => api('get /api/v1/instant-recoveries'), []);
  const mine = running.data?.items.filter((r) => r.pointId === point.id && r.repository === point.repository) ?? [];
  const start = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      await api('post /api/v1/instant-recoveries', {
        body: { repository: point.repository, pointId: point.id, disk, writable },
      });
      running.reload();
    } catch (x) {
      setError(x as Error);
    }
  };
  const stop = async (id: string) => {
    setError(undefined);
    try {
      await api('delete /api/v1/instant-recoveries/{id}', { path: { id } });
      running.reload();
    } catch (x) {
      setError(x as Error);
    }
  };
  return (
    <form class="stack" id="instant-form" onSubmit={start}>
      <h3>Instant recovery of {point.vm}</h3>
      <p class="muted">
        The server serves the disk straight from the repository over NBD (unencrypted: a trusted network only).
      </p>
      <Field id="ir-disk" label="Disk">
        <select id="ir-disk" value={disk} onChange={(e) => setDisk(Number(e.currentTarget.value))}>
          {point.disks.map((d) => (
            <option key={d.index} value={d.index}>
              disk {d.index} ({bytes(d.sizeBytes)})
            </option>
          ))}
        </select>
      </Field>
      <Check
        id="ir-writable"
        label="Writable (writes go to a temporary overlay, dropped when stopped)"
        checked={writable}
        onChange={setWritable}
      />
      {mine.length ? (
        <ul id="ir-running" aria-label="instant recoveries of this restore point">
          {mine.map((r) => (
            <li key={r.id}>
              disk {r.disk}: <code class="ir-uri">{r.uri}</code>
              {r.writable ? ' (writable)' : ' (read-only)'}, since {when(r.startedAt)}{' '}
              <button type="button" class="secondary ir-stop" onClick={() => void stop(r.id)}>
                Stop
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      <ErrorBox error={error ?? running.error} />
      <p class="row">
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
        <button type="submit" id="ir-start">
          Start instant recovery
        </button>
      </p>
    </form>
  );
}
