import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../api/client.js';
import type { PolicySpec, Vm } from '../api/types.js';
import { Check, ErrorBox, Field, Loaded, Title } from '../ui/components.js';
import { useAsync } from '../ui/hooks.js';
import { go } from '../ui/router.js';
import { specOf } from './policies.js';

type SelectorKind = 'pattern' | 'name' | 'vcenter';
interface SelectorRow {
  kind: SelectorKind;
  value: string;
  vcenter: string;
}
const KEEPS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
type Keep = (typeof KEEPS)[number];
const KEEP_LABEL: Record<Keep, string> = {
  keepLast: 'Keep the newest N restore points',
  keepHourly: 'Hourly: newest point of each of the last N hours',
  keepDaily: 'Daily: newest point of each of the last N days',
  keepWeekly: 'Weekly (GFS): newest point of each of the last N weeks',
  keepMonthly: 'Monthly (GFS): newest point of each of the last N months',
  keepYearly: 'Yearly (GFS): newest point of each of the last N years',
};

interface FormState {
  name: string;
  description: string;
  enabled: boolean;
  repository: string;
  selectors: SelectorRow[];
  schedule: string;
  rpoHours: string;
  keeps: Record<Keep, string>;
  removeOtherPoints: boolean;
  pruneAfterForget: boolean;
  verifySchedule: string;
  verifyPercent: string;
  tags: string;
}
const EMPTY: FormState = {
  name: '',
  description: '',
  enabled: true,
  repository: '',
  selectors: [{ kind: 'pattern', value: '', vcenter: '' }],
  schedule: '0 2 * * *',
  rpoHours: '26',
  keeps: { keepLast: '', keepHourly: '', keepDaily: '7', keepWeekly: '4', keepMonthly: '', keepYearly: '' },
  removeOtherPoints: false,
  pruneAfterForget: false,
  verifySchedule: '',
  verifyPercent: '0',
  tags: '',
};

function fromSpec(s: PolicySpec): FormState {
  const keeps = { ...EMPTY.keeps };
  for (const k of KEEPS) keeps[k] = s.retention?.[k] === undefined ? '' : String(s.retention[k]);
  return {
    name: s.name,
    description: s.description ?? '',
    enabled: s.enabled ?? true,
    repository: s.repository,
    selectors: s.vms.map((v) =>
      'vcenter' in v
        ? { kind: 'vcenter', value: v.name ?? v.pattern ?? '', vcenter: v.vcenter }
        : 'pattern' in v
          ? { kind: 'pattern', value: v.pattern, vcenter: '' }
          : { kind: 'name', value: v.name, vcenter: '' },
    ),
    schedule: s.schedule ?? '',
    rpoHours: String(s.rpoHours ?? 24),
    keeps,
    removeOtherPoints: s.retention?.removeOtherPoints ?? false,
    pruneAfterForget: s.pruneAfterForget ?? false,
    verifySchedule: s.verify?.schedule ?? '',
    verifyPercent: String(s.verify?.readDataPercent ?? 0),
    tags: (s.tags ?? []).join(', '),
  };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$/;
const isCron = (s: string) => /^\S+( \S+){4,5}$/.test(s.trim());
const isCount = (s: string) => s === '' || (/^\d+$/.test(s) && Number(s) <= 100_000);

/** Client-side checks (the server checks again and its answer is shown by field too). */
export function validate(f: FormState): Record<string, string> {
  const e: Record<string, string> = {};
  if (!NAME.test(f.name))
    e.name = 'letters, digits, ".", "_", "-" or spaces; starts with a letter or digit; 64 at most';
  if (!f.repository) e.repository = 'choose a repository';
  if (!f.selectors.some((s) => s.value.trim() || s.kind === 'vcenter'))
    e.vms = 'select at least one VM (a name or a pattern such as web*)';
  if (f.selectors.some((s) => s.kind === 'vcenter' && !s.vcenter.trim()))
    e.vms = 'a vCenter selector needs the vCenter';
  if (f.schedule && !isCron(f.schedule)) e.schedule = 'a cron expression of 5 or 6 fields, e.g. 0 2 * * *';
  const rpo = Number(f.rpoHours);
  if (!(rpo > 0 && rpo <= 8784))
    e.rpoHours = 'hours between backups that still meet the RPO: more than 0, 8784 at most';
  for (const k of KEEPS) if (!isCount(f.keeps[k])) e[k] = 'a whole number (0 to 100000) or empty';
  if (f.verifySchedule && !isCron(f.verifySchedule)) e.verifySchedule = 'a cron expression of 5 or 6 fields';
  const pct = Number(f.verifyPercent);
  if (!(pct >= 0 && pct <= 100)) e.verifyPercent = 'a percentage from 0 to 100';
  return e;
}

export function toSpec(f: FormState): PolicySpec {
  const retention: NonNullable<PolicySpec['retention']> = {};
  for (const k of KEEPS) if (f.keeps[k] !== '') retention[k] = Number(f.keeps[k]);
  const any = Object.keys(retention).length > 0;
  if (any && f.removeOtherPoints) retention.removeOtherPoints = true;
  return {
    name: f.name.trim(),
    description: f.description,
    enabled: f.enabled,
    repository: f.repository,
    vms: f.selectors
      .filter((s) => s.value.trim() || s.kind === 'vcenter')
      .map((s) =>
        s.kind === 'pattern'
          ? { pattern: s.value.trim() }
          : s.kind === 'name'
            ? { name: s.value.trim() }
            : { vcenter: s.vcenter.trim(), ...(s.value.trim() ? { pattern: s.value.trim() } : {}) },
      ),
    ...(f.schedule.trim() ? { schedule: f.schedule.trim() } : {}),
    rpoHours: Number(f.rpoHours),
    ...(any ? { retention } : {}),
    pruneAfterForget: f.pruneAfterForget,
    ...(f.verifySchedule.trim()
      ? { verify: { schedule: f.verifySchedule.trim(), readDataPercent: Number(f.verifyPercent) } }
      : {}),
    tags: f.tags
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  };
}

const glob = (p: string) =>
  new RegExp(
    `^${p
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );

/** Which inventory VMs the selectors pick (vCenter selectors are resolved by the server when saved). */
export function preview(f: FormState, vms: Vm[]): { names: string[]; serverSide: number } {
  const names = new Set<string>();
  let serverSide = 0;
  for (const s of f.selectors) {
    const v = s.value.trim();
    if (s.kind === 'vcenter') serverSide++;
    else if (v) for (const vm of vms) if (s.kind === 'name' ? vm.name === v : glob(v).test(vm.name)) names.add(vm.name);
  }
  return { names: [...names].sort(), serverSide };
}

/** New policy or edit of one (`id`): a form with validation, what retention keeps in words, a VM preview. */
export function PolicyFormPage({ id }: { id: string | null }) {
  const state = useAsync(
    () =>
      Promise.all([
        id ? api('get /api/v1/policies/{id}', { path: { id } }) : Promise.resolve(undefined),
        api('get /api/v1/repositories'),
        api('get /api/v1/vms', { query: { limit: 500 } }),
      ] as const),
    [id],
  );
  return (
    <>
      <Title>{id ? 'Edit policy' : 'New policy'}</Title>
      <Loaded state={state}>
        {([policy, repos, vms]) => (
          <PolicyForm
            id={policy?.id}
            initial={policy ? fromSpec(specOf(policy)) : { ...EMPTY, repository: repos.items[0]?.name ?? '' }}
            repositories={repos.items.map((r) => r.name)}
            vms={vms.items}
          />
        )}
      </Loaded>
    </>
  );
}

function PolicyForm({
  id,
  initial,
  repositories,
  vms,
}: {
  id: string | undefined;
  initial: FormState;
  repositories: string[];
  vms: Vm[];
}) {
  const [f, setF] = useState(initial);
  const [touched, setTouched] = useState(false);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<Error | undefined>();
  const errors = { ...(touched ? validate(f) : {}), ...serverErrors };
  useEffect(() => {
    setServerErrors({});
    setError(undefined);
  }, [f]);
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => setF((s) => ({ ...s, [k]: v }));
  const setKeep = (k: Keep, v: string) => setF((s) => ({ ...s, keeps: { ...s.keeps, [k]: v } }));
  const setSel = (i: number, row: Partial<SelectorRow>) =>
    setF((s) => ({ ...s, selectors: s.selectors.map((x, j) => (j === i ? { ...x, ...row } : x)) }));
  const pv = preview(f, vms);
  const submit = async (e: Event) => {
    e.preventDefault();
    setTouched(true);
    const problems = validate(f);
    if (Object.keys(problems).length) {
      setError(new Error(`check the form: ${Object.keys(problems).length} field(s) need a change`));
      document.getElementById(`policy-${Object.keys(problems)[0]}`)?.focus();
      return;
    }
    try {
      const body = toSpec(f);
      if (id) await api('put /api/v1/policies/{id}', { path: { id }, body });
      else await api('post /api/v1/policies', { body });
      go('/policies');
    } catch (x) {
      setError(x as Error);
      if (x instanceof ApiError) {
        const issues = (x.body.details?.issues ?? []) as { path: string; message: string }[];
        const byField: Record<string, string> = {};
        for (const i of issues) {
          const field = i.path.split('.')[1];
          if (field) byField[field === 'retention' ? (i.path.split('.')[2] ?? field) : field] = i.message;
        }
        setServerErrors(byField);
      }
    }
  };
  const input = (
    k: 'name' | 'description' | 'schedule' | 'rpoHours' | 'verifySchedule' | 'verifyPercent' | 'tags',
  ) => ({
    id: `policy-${k}`,
    name: k,
    value: f[k],
    'aria-invalid': errors[k] ? true : undefined,
    'aria-describedby': errors[k] ? `policy-${k}-error` : undefined,
    onInput: (e: Event) => set(k, (e.currentTarget as HTMLInputElement).value),
  });
  return (
    <form class="stack" id="policy-form" noValidate onSubmit={submit}>
      <fieldset>
        <legend>Policy</legend>
        <Field id="policy-name" label="Name" error={errors.name}>
          <input {...input('name')} required />
        </Field>
        <Field id="policy-description" label="Description">
          <input {...input('description')} />
        </Field>
        <Check
          id="policy-enabled"
          label="Enabled (scheduled backups run)"
          checked={f.enabled}
          onChange={(v) => set('enabled', v)}
        />
        <Field id="policy-repository" label="Repository" error={errors.repository}>
          <select
            id="policy-repository"
            value={f.repository}
            onChange={(e) => set('repository', e.currentTarget.value)}
          >
            <option value="">choose</option>
            {repositories.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
      </fieldset>
      <fieldset id="policy-vms" aria-describedby={errors.vms ? 'policy-vms-error' : undefined}>
        <legend>Virtual machines</legend>
        {f.selectors.map((s, i) => (
          <div class="row selector" key={i}>
            <label for={`sel-kind-${i}`} class="sr-only">
              selector {i + 1} kind
            </label>
            <select
              id={`sel-kind-${i}`}
              value={s.kind}
              onChange={(e) => setSel(i, { kind: e.currentTarget.value as SelectorKind })}
            >
              <option value="pattern">name pattern</option>
              <option value="name">exact name</option>
              <option value="vcenter">in a vCenter</option>
            </select>
            {s.kind === 'vcenter' ? (
              <>
                <label for={`sel-vc-${i}`} class="sr-only">
                  selector {i + 1} vCenter
                </label>
                <input
                  id={`sel-vc-${i}`}
                  placeholder="vCenter name"
                  value={s.vcenter}
                  onInput={(e) => setSel(i, { vcenter: e.currentTarget.value })}
                />
              </>
            ) : null}
            <label for={`sel-value-${i}`} class="sr-only">
              selector {i + 1} value
            </label>
            <input
              id={`sel-value-${i}`}
              class="selector-value"
              placeholder={s.kind === 'name' ? 'db01' : 'web* (empty: every VM of the vCenter)'}
              value={s.value}
              onInput={(e) => setSel(i, { value: e.currentTarget.value })}
            />
            <button
              type="button"
              class="secondary"
              aria-label={`remove selector ${i + 1}`}
              disabled={f.selectors.length === 1}
              onClick={() =>
                set(
                  'selectors',
                  f.selectors.filter((_x, j) => j !== i),
                )
              }
            >
              Remove
            </button>
          </div>
        ))}
        <button
          type="button"
          class="secondary"
          id="add-selector"
          onClick={() => set('selectors', [...f.selectors, { kind: 'pattern', value: '', vcenter: '' }])}
        >
          Add a selector
        </button>
        {errors.vms ? (
          <div class="field-error" id="policy-vms-error" role="alert">
            {errors.vms}
          </div>
        ) : null}
        <div id="vm-preview" aria-live="polite">
          <strong>Selects {pv.names.length} VM(s) of the inventory:</strong> {pv.names.join(', ') || 'none'}
          {pv.serverSide ? <span class="muted"> (vCenter selectors are resolved by the server)</span> : null}
        </div>
      </fieldset>
      <fieldset>
        <legend>Schedule and RPO</legend>
        <Field id="policy-schedule" label="Backup schedule (cron; empty: on demand only)" error={errors.schedule}>
          <input {...input('schedule')} />
        </Field>
        <Field
          id="policy-rpoHours"
          label="RPO in hours"
          hint="a VM whose newest restore point is older than this breaches its RPO"
          error={errors.rpoHours}
        >
          <input {...input('rpoHours')} type="number" min="0" step="any" />
        </Field>
      </fieldset>
      <fieldset id="policy-retention">
        <legend>Retention</legend>
        <p class="muted" id="retention-help">
          Keep N restore points (keepLast), and GFS on top: hourly, daily, weekly, monthly and yearly rules keep the
          newest point of each of the last N periods (earlier points of the same period go). A point any rule keeps
          stays. Only the points this policy made are removed, unless the box below is ticked; held and locked points
          always stay. Leave all empty to keep everything.
        </p>
        {KEEPS.map((k) => (
          <Field key={k} id={`policy-${k}`} label={KEEP_LABEL[k]} error={errors[k]}>
            <input
              id={`policy-${k}`}
              type="number"
              min="0"
              step="1"
              value={f.keeps[k]}
              aria-invalid={errors[k] ? true : undefined}
              onInput={(e) => setKeep(k, e.currentTarget.value)}
            />
          </Field>
        ))}
        <Check
          id="policy-removeOtherPoints"
          label="Also remove restore points this policy did not make (made by hand or by another policy)"
          checked={f.removeOtherPoints}
          onChange={(v) => set('removeOtherPoints', v)}
        />
        <Check
          id="policy-pruneAfterForget"
          label="Free the space at once (prune after removing points)"
          checked={f.pruneAfterForget}
          onChange={(v) => set('pruneAfterForget', v)}
        />
      </fieldset>
      <fieldset>
        <legend>Verification</legend>
        <Field id="policy-verifySchedule" label="Verify schedule (cron; empty: none)" error={errors.verifySchedule}>
          <input {...input('verifySchedule')} />
        </Field>
        <Field
          id="policy-verifyPercent"
          label="Data read and re-hashed at each verify (%)"
          error={errors.verifyPercent}
        >
          <input {...input('verifyPercent')} type="number" min="0" max="100" />
        </Field>
        <Field id="policy-tags" label="Tags (comma separated)">
          <input {...input('tags')} />
        </Field>
      </fieldset>
      <ErrorBox error={error} id="policy-form-error" />
      <p class="row">
        <a class="button secondary" href="#/policies">
          Cancel
        </a>
        <button type="submit" id="policy-save">
          {id ? 'Save policy' : 'Create policy'}
        </button>
      </p>
    </form>
  );
}
