import { useState } from 'preact/hooks';
import { api, ApiError, optionalGet } from '../api/client.js';
import type { Job, RestorePoint, StoredVmConfig, VcenterInfo } from '../api/types.js';
import { Check, ErrorBox, Field, Loaded } from '../ui/components.js';
import { bytes } from '../ui/format.js';
import { useAsync } from '../ui/hooks.js';
import { go } from '../ui/router.js';

/** A plain VM name as the server's restore-vm job accepts it. */
const VM_NAME = /^[^/*?[\]\\]+$/;

/** The plan of a dry run (the job's result.plan: src/vsphere VsphereRestorePlan). */
interface Plan {
  vm: string;
  mode: string;
  datacenter: string;
  datastore: string;
  folder?: string;
  pool?: string;
  host?: string;
  existingVm?: string;
  disks: { capacityBytes: number; fileName?: string }[];
  nics: { type: string; network: string; backing: string; macAddress: string | null; connected: boolean }[];
  warnings: string[];
}

const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** Polls a job until it has ended (the dry run takes a few seconds at most). */
async function finished(id: number, signal: { stop: boolean }): Promise<Job & { result?: unknown }> {
  for (;;) {
    const j = await api('get /api/v1/jobs/{id}', { path: { id } });
    if (TERMINAL.includes(j.status) || signal.stop) return j as Job & { result?: unknown };
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * Whole VM into a configured vCenter (the server's `restore-vm` job): as a new VM, in place over the powered-off VM,
 * or a quick rollback (in place, only what differs). A dry run validates the form against vCenter and shows the plan;
 * the restore itself is offered once the plan of exactly these settings has been shown (quick rollback: no dry run).
 */
export function VmRestoreForm({ point, inPlace, back }: { point: RestorePoint; inPlace: boolean; back: () => void }) {
  const state = useAsync(async () => {
    const [vcenters, config] = await Promise.all([
      optionalGet('/api/v1/vcenters') as Promise<{ items: VcenterInfo[] } | null>,
      api('get /api/v1/restore-points/{id}/vm-config', {
        path: { id: point.id },
        query: { repository: point.repository },
      }),
    ]);
    return { vcenters: vcenters?.items ?? [], config };
  }, [point.id, point.repository]);
  return (
    <Loaded state={state}>
      {({ vcenters, config }) => (
        <VmForm point={point} inPlace={inPlace} back={back} vcenters={vcenters} config={config} />
      )}
    </Loaded>
  );
}

function VmForm({
  point,
  inPlace,
  back,
  vcenters,
  config,
}: {
  point: RestorePoint;
  inPlace: boolean;
  back: () => void;
  vcenters: VcenterInfo[];
  config: StoredVmConfig;
}) {
  const [vcenter, setVcenter] = useState(vcenters[0]?.name ?? '');
  const [name, setName] = useState(inPlace ? point.vm : `${point.vm}-restored`);
  const [datastore, setDatastore] = useState(config.disks[0]?.datastore ?? '');
  const [folder, setFolder] = useState('');
  const [pool, setPool] = useState('');
  const [host, setHost] = useState('');
  const [networks, setNetworks] = useState<string[]>(config.nics.map(() => ''));
  const [disconnected, setDisconnected] = useState(false);
  const [powerOn, setPowerOn] = useState(false);
  const [keepMac, setKeepMac] = useState(false);
  const [keepUuid, setKeepUuid] = useState(false);
  const [quick, setQuick] = useState(false);
  const [plan, setPlan] = useState<{ key: string; plan: Plan } | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | string | undefined>();

  const nameError = name && !VM_NAME.test(name) ? 'a plain VM name: no / \\ * ? [ ]' : undefined;
  const networkMap: Record<string, string> = {};
  config.nics.forEach((n, i) => {
    const to = networks[i]?.trim();
    if (n.network && to && to !== n.network) networkMap[n.network] = to;
  });
  const body = {
    kind: 'restore-vm' as const,
    repository: point.repository,
    pointId: point.id,
    vcenter,
    name: name.trim(),
    datastore: datastore.trim(),
    ...(folder.trim() ? { folder: folder.trim() } : {}),
    ...(pool.trim() ? { pool: pool.trim() } : {}),
    ...(host.trim() ? { host: host.trim() } : {}),
    ...(Object.keys(networkMap).length ? { networkMap } : {}),
    force: inPlace,
    quick: inPlace && quick,
    powerOn,
    nicsDisconnected: disconnected,
    keepMac,
    keepUuid,
  };
  // the settings a shown plan belongs to: any change asks for a new dry run
  const key = JSON.stringify(body);
  const planned = plan?.key === key ? plan.plan : undefined;
  const needsPlan = !body.quick;

  const start = async (dryRun: boolean) => {
    setError(undefined);
    if (!vcenter) return setError('choose a vCenter');
    if (nameError) return setError(`VM name: ${nameError}`);
    setBusy(true);
    try {
      const r = await api('post /api/v1/jobs', { body: { ...body, dryRun } });
      const job = r.items[0]!;
      if (!dryRun) return go(`/jobs/${job.id}`);
      const done = await finished(job.id, { stop: false });
      if (done.status !== 'succeeded') {
        setPlan(undefined);
        const e = done.error;
        setError(e ? new ApiError(400, { code: e.code, message: e.message }) : `the dry run ended ${done.status}`);
        return;
      }
      setPlan({ key, plan: (done.result as { plan: Plan }).plan });
    } catch (x) {
      setError(x as Error);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void start(needsPlan && !planned);
  };

  if (!config.vsphere)
    return (
      <div class="stack">
        <ErrorBox error="this restore point holds disks only (no stored vSphere VM configuration): restore a disk" />
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
      </div>
    );
  return (
    <form class="stack" id="restore-vm-form" onSubmit={submit} aria-describedby="restore-vm-what">
      <h3>
        Restore {point.vm} to vCenter {inPlace ? 'in place' : 'as a new VM'}
      </h3>
      <p class="muted" id="restore-vm-what">
        {inPlace
          ? 'Overwrites the disks of the existing VM of that name; it must be powered off and have no snapshots. '
          : 'Creates a new VM from the stored configuration and every disk (NFC import); nothing existing changes. '}
        From repository {point.repository}.
      </p>
      <Field id="vm-vcenter" label="vCenter" hint={vcenters.length ? undefined : 'no vCenter is configured'}>
        <select id="vm-vcenter" required value={vcenter} onChange={(e) => setVcenter(e.currentTarget.value)}>
          {vcenters.map((v) => (
            <option key={v.name} value={v.name}>
              {v.name}
              {v.error ? ` (last read failed: ${v.error.code})` : ''}
            </option>
          ))}
        </select>
      </Field>
      <Field id="vm-name" label={inPlace ? 'Existing VM to overwrite' : 'New VM name'} error={nameError}>
        <input
          id="vm-name"
          required
          maxLength={80}
          value={name}
          aria-invalid={nameError ? 'true' : undefined}
          onInput={(e) => setName(e.currentTarget.value)}
        />
      </Field>
      <Field
        id="vm-datastore"
        label="Datastore"
        hint={`at backup time: ${config.disks.map((d) => d.datastore).join(', ')}`}
      >
        <input id="vm-datastore" required value={datastore} onInput={(e) => setDatastore(e.currentTarget.value)} />
      </Field>
      {inPlace ? null : (
        <fieldset>
          <legend>Placement (empty: as at backup time, else the datacenter's defaults)</legend>
          <Field id="vm-folder" label="VM folder" hint={config.folder ? `at backup time: ${config.folder}` : undefined}>
            <input id="vm-folder" value={folder} onInput={(e) => setFolder(e.currentTarget.value)} />
          </Field>
          <Field id="vm-pool" label="Resource pool" hint={config.pool ? `at backup time: ${config.pool}` : undefined}>
            <input id="vm-pool" value={pool} onInput={(e) => setPool(e.currentTarget.value)} />
          </Field>
          <Field id="vm-host" label="Host" hint={config.host ? `at backup time: ${config.host}` : undefined}>
            <input id="vm-host" value={host} onInput={(e) => setHost(e.currentTarget.value)} />
          </Field>
        </fieldset>
      )}
      {inPlace || config.nics.length === 0 ? null : (
        <fieldset id="network-map">
          <legend>Network map (empty: the same network)</legend>
          {config.nics.map((n, i) => (
            <Field
              key={n.index}
              id={`vm-net-${i}`}
              label={`NIC ${n.index} (${n.type}) on ${n.network ?? '?'} → network`}
            >
              <input
                id={`vm-net-${i}`}
                value={networks[i] ?? ''}
                placeholder={n.network ?? ''}
                onInput={(e) => {
                  const v = e.currentTarget.value;
                  setNetworks((old) => old.map((x, j) => (j === i ? v : x)));
                }}
              />
            </Field>
          ))}
        </fieldset>
      )}
      {inPlace ? (
        <Check
          id="vm-quick"
          label="Quick rollback: write only what differs (CBT or comparison)"
          checked={quick}
          onChange={setQuick}
        />
      ) : (
        <>
          <Check
            id="vm-nics-disconnected"
            label="NICs disconnected at power-on"
            checked={disconnected}
            onChange={setDisconnected}
          />
          <Check id="vm-keep-mac" label="Keep the MAC addresses" checked={keepMac} onChange={setKeepMac} />
          <Check id="vm-keep-uuid" label="Keep the BIOS and instance UUIDs" checked={keepUuid} onChange={setKeepUuid} />
        </>
      )}
      <Check id="vm-power-on" label="Power on when restored" checked={powerOn} onChange={setPowerOn} />
      {planned ? <PlanView plan={planned} /> : null}
      <ErrorBox error={error} id="restore-vm-error" />
      <p class="row">
        <button type="button" class="secondary" onClick={back}>
          Back
        </button>
        {needsPlan ? (
          <button type="button" class="secondary" id="vm-dry-run" disabled={busy} onClick={() => void start(true)}>
            {busy ? 'Checking…' : 'Dry run (show the plan)'}
          </button>
        ) : null}
        <button
          type="submit"
          id="vm-restore"
          disabled={busy || (needsPlan && !planned)}
          title={needsPlan && !planned ? 'run the dry run of these settings first' : undefined}
        >
          {body.quick ? 'Start quick rollback' : 'Start restore'}
        </button>
      </p>
    </form>
  );
}

function PlanView({ plan }: { plan: Plan }) {
  return (
    <section id="restore-vm-plan" aria-label="plan of the dry run">
      <h4>
        Plan: {plan.mode} {plan.vm}
      </h4>
      <p>
        datacenter {plan.datacenter}, datastore {plan.datastore}
        {plan.folder ? `, folder ${plan.folder}` : ''}
        {plan.pool ? `, pool ${plan.pool}` : ''}
        {plan.host ? `, host ${plan.host}` : ''}
        {plan.existingVm ? `, over VM ${plan.existingVm}` : ''}
      </p>
      <ul>
        {plan.disks.map((d, i) => (
          <li key={`d${i}`}>
            disk {i}: {bytes(d.capacityBytes)}
            {d.fileName ? ` → ${d.fileName}` : ''}
          </li>
        ))}
        {plan.nics.map((n, i) => (
          <li key={`n${i}`}>
            NIC {n.type} on {n.network} ({n.backing}), {n.macAddress ? `MAC ${n.macAddress}` : 'new MAC'}
            {n.connected ? '' : ', disconnected'}
          </li>
        ))}
      </ul>
      {plan.warnings.map((w) => (
        <p class="muted" key={w}>
          warning: {w}
        </p>
      ))}
    </section>
  );
}
