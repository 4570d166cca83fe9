import { access } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import { loadInventory, selectVms, type Inventory, type VmInfo } from './inventory.js';
import { retrieveOne } from './property-collector.js';
import { HotAddTransport, hotAddEnv } from './transports/hotadd-transport.js';
import type { VimClient } from './vim-client.js';
import { isOrphan, SNAPSHOT_PREFIX } from './vm-backup.js';
import { unsnapshottable } from './vm-model.js';
import { boolOf, children, type MoRef, textOf } from './xml.js';

/** Privileges per operation (docs/OPERATIONS.md §vCenter privileges; keep both in step). */
export const PRIVILEGES = {
  base: ['System.Anonymous', 'System.View', 'System.Read'],
  backupVm: [
    'VirtualMachine.State.CreateSnapshot',
    'VirtualMachine.State.RemoveSnapshot',
    'VirtualMachine.Provisioning.DiskRandomRead',
    'VirtualMachine.Provisioning.GetVmFiles',
  ],
  /** only needed while CBT is off (Coffer turns it on) */
  changeTracking: ['VirtualMachine.Config.ChangeTracking'],
  httpDatastore: ['Datastore.Browse'],
  hotaddProxy: [
    'VirtualMachine.Config.AddExistingDisk',
    'VirtualMachine.Config.RemoveDisk',
    'VirtualMachine.Config.AddRemoveDevice',
    'VirtualMachine.Config.Settings',
  ],
  hotaddDatastore: ['Datastore.Browse'],
  nbdVm: [
    'VirtualMachine.Provisioning.AllowDiskAccess',
    'VirtualMachine.Provisioning.AllowReadOnlyDiskAccess',
    'VirtualMachine.Config.DiskLease',
  ],
} as const;

export type TransportName = 'http' | 'hotadd' | 'nbd';

export interface MissingPrivilege {
  entity: string;
  moref: string;
  privilege: string;
}

export interface TransportCheck {
  /** the transport can be set up for this VM (proxy found, VDDK present, datastores readable) */
  available: boolean;
  reason: string | null;
  missing: MissingPrivilege[];
  /** available and no privilege missing */
  usable: boolean;
}

export interface VmCheck {
  name: string;
  moref: string;
  path: string;
  ok: boolean;
  /** what stops a backup of this VM (each one a sentence) */
  blockers: string[];
  warnings: string[];
  /** privileges missing for every backup (transport-independent) */
  missing: MissingPrivilege[];
  cbt: { enabled: boolean };
  toolsRunningStatus: string | null;
  consolidationNeeded: boolean;
  disks: {
    key: number;
    fileName: string;
    datastore: string | null;
    datastoreType: string | null;
    backing: string;
    diskMode: string | null;
    /** backup: read; skipped: left out with a warning (independent, physical RDM) */
    support: 'backup' | 'skipped';
    reason: string | null;
  }[];
  transports: Record<TransportName, TransportCheck>;
  /** the transport a backup with the given --transport would use (null: none works) */
  transport: TransportName | null;
  snapshots: { name: string; moref: string; coffer: boolean; orphan: boolean }[];
}

export interface CheckReport {
  vcenter: { url: string; product: string; apiVersion: string; user: string | null };
  ok: boolean;
  vms: VmCheck[];
}

export interface CheckOptions extends Op {
  /** the transport the backups will ask for (default auto) */
  transport?: 'auto' | TransportName;
  vddkLibdir?: string | undefined;
  proxyVm?: string | undefined;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
}

/**
 * `coffer vsphere check`: whether a backup of each selected VM can work with this account, without changing
 * anything in vCenter (no snapshot, no CBT change, no disk attached or detached). Privileges are asked with
 * AuthorizationManager.HasPrivilegeOnEntity for the current session.
 */
export async function checkVsphere(
  client: VimClient,
  target: { display: string; vm: string; user: string | null },
  opts: CheckOptions,
): Promise<CheckReport> {
  const inv = await loadInventory(client, opts);
  const vms = target.vm ? selectVms(inv.vms, target.vm, false) : inv.vms.filter((v) => !v.config?.template);
  const privs = await privilegeChecker(client, opts);
  const out: VmCheck[] = [];
  for (const vm of vms) out.push(await checkVm(client, inv, vm, privs, opts));
  return {
    vcenter: {
      url: target.display,
      product: client.serviceContent.fullName,
      apiVersion: client.serviceContent.apiVersion,
      user: target.user,
    },
    ok: out.every((v) => v.ok),
    vms: out,
  };
}

type PrivilegeChecker = (entity: { ref: MoRef; name: string }, ids: readonly string[]) => Promise<MissingPrivilege[]>;

async function privilegeChecker(client: VimClient, op: Op): Promise<PrivilegeChecker> {
  const authz = client.serviceContent.authorizationManager;
  if (!authz)
    throw new CofferError('VSPHERE_FAULT', 'vCenter has no AuthorizationManager', { details: { protocol: true } });
  const sm = await retrieveOne(client, client.serviceContent.sessionManager, ['currentSession'], op);
  const session = sm.props.get('currentSession');
  const key = session ? textOf(session, 'key') : undefined;
  if (!key)
    throw new CofferError('VSPHERE_FAULT', 'vCenter did not tell the current session', { details: { protocol: true } });
  const cache = new Map<string, boolean>();
  return async (entity, ids) => {
    const ask = ids.filter((id) => !cache.has(`${entity.ref.toString()} ${id}`));
    if (ask.length > 0) {
      const res = await client.invoke(
        'HasPrivilegeOnEntity',
        authz,
        { entity: entity.ref, sessionId: key, privId: [...ask] },
        op,
      );
      const vals = children(res, 'returnval').map((n) => n.text.trim() === 'true');
      if (vals.length !== ask.length)
        throw new CofferError(
          'VSPHERE_FAULT',
          `HasPrivilegeOnEntity answered ${vals.length} values for ${ask.length} privileges`,
          { details: { protocol: true } },
        );
      for (const [i, id] of ask.entries()) cache.set(`${entity.ref.toString()} ${id}`, vals[i]!);
    }
    return ids
      .filter((id) => !cache.get(`${entity.ref.toString()} ${id}`))
      .map((privilege) => ({ entity: entity.name, moref: entity.ref.value, privilege }));
  };
}

async function checkVm(
  client: VimClient,
  inv: Inventory,
  vm: VmInfo,
  privs: PrivilegeChecker,
  opts: CheckOptions,
): Promise<VmCheck> {
  const blockers: string[] = [];
  const warnings: string[] = [];
  const cfg = vm.config;
  const dsOf = (ref: MoRef | undefined) => (ref ? inv.datastores.find((d) => d.ref.value === ref.value) : undefined);
  const disks = (cfg?.disks ?? []).map((d) => {
    const ds = dsOf(d.datastore);
    const why = unsnapshottable(d);
    return {
      key: d.key,
      fileName: d.fileName,
      datastore: ds?.name ?? null,
      datastoreType: ds?.type ?? null,
      backing: d.compatibilityMode ? `rdm-${d.compatibilityMode.replace(/Mode$/, '')}` : 'flat',
      diskMode: d.diskMode ?? null,
      support: (why ? 'skipped' : 'backup') as 'backup' | 'skipped',
      reason: why ?? null,
    };
  });
  const readable = (cfg?.disks ?? []).filter((d) => !unsnapshottable(d));
  if (!cfg) blockers.push('vCenter sent no configuration for this VM (no System.Read on it?)');
  else if (cfg.disks.length === 0) blockers.push('the VM has no virtual disks');
  else if (readable.length === 0)
    blockers.push('no disk a snapshot can capture (only independent disks or physical RDMs)');
  for (const d of disks)
    if (d.support === 'skipped') warnings.push(`disk ${d.key} (${d.fileName}) is skipped: ${d.reason}`);

  const vmEntity = { ref: vm.ref, name: vm.name };
  const cbtOn = Boolean(cfg?.changeTrackingEnabled);
  const missing = await privs(vmEntity, [
    ...PRIVILEGES.base,
    ...PRIVILEGES.backupVm,
    ...(cbtOn ? [] : PRIVILEGES.changeTracking),
  ]);
  if (missing.length > 0)
    blockers.push(`the account lacks ${missing.map((m) => m.privilege).join(', ')} on VM ${vm.name}`);
  if (!cbtOn)
    warnings.push('changed block tracking is off: the first backup turns it on and reads every allocated block');

  const datastores = [...new Map(readable.map((d) => [d.datastore?.value ?? '', dsOf(d.datastore)])).values()].filter(
    (d): d is NonNullable<typeof d> => d !== undefined,
  );
  const dsPrivs = async (ids: readonly string[]) =>
    (await Promise.all(datastores.map((d) => privs({ ref: d.ref, name: d.name }, ids)))).flat();
  const vsan = readable.filter((d) => dsOf(d.datastore)?.type?.toLowerCase() === 'vsan');
  const rdmVirtual = readable.filter((d) => d.compatibilityMode === 'virtualMode');

  const transports = {} as Record<TransportName, TransportCheck>;
  // http: vCenter's /folder; no vSAN objects
  {
    const reason =
      vsan.length > 0
        ? `vSAN disks (${vsan.map((d) => d.fileName).join(', ')}) cannot be read over http`
        : rdmVirtual.length > 0
          ? `RDM disks (${rdmVirtual.map((d) => d.fileName).join(', ')}) have no file /folder can serve`
          : null;
    const m = reason ? [] : await dsPrivs(PRIVILEGES.httpDatastore);
    transports.http = { available: !reason, reason, missing: m, usable: !reason && m.length === 0 };
  }
  // hotadd: Coffer on a proxy VM of the cluster (read-only checks: nothing detached or attached)
  {
    let reason: string | null = null;
    let m: MissingPrivilege[] = [];
    try {
      const t = new HotAddTransport({
        client,
        inventory: inv,
        proxyVm: opts.proxyVm,
        ...hotAddEnv(opts.env),
        logger: opts.logger,
      });
      await t.check(vm, readable, opts, { recover: false });
      const proxy = await t.findProxy();
      m = [
        ...(await privs({ ref: proxy.ref, name: proxy.name }, PRIVILEGES.hotaddProxy)),
        ...(await dsPrivs(PRIVILEGES.hotaddDatastore)),
      ];
    } catch (e) {
      if (!(e instanceof CofferError) || e.code !== 'VSPHERE_TRANSPORT') throw e;
      reason = e.message;
    }
    transports.hotadd = { available: !reason, reason, missing: m, usable: !reason && m.length === 0 };
  }
  // nbd: VMware VDDK through nbdkit
  {
    let reason: string | null = null;
    if (!opts.vddkLibdir) reason = 'VDDK is not configured (--vddk-libdir DIR)';
    else
      await access(opts.vddkLibdir).catch(() => {
        reason = `the VDDK directory ${opts.vddkLibdir} does not exist`;
      });
    const m = reason ? [] : await privs(vmEntity, PRIVILEGES.nbdVm);
    transports.nbd = { available: !reason, reason, missing: m, usable: !reason && m.length === 0 };
  }
  const want = opts.transport ?? 'auto';
  const order: TransportName[] = want === 'auto' ? ['hotadd', 'nbd', 'http'] : [want];
  const transport = order.find((t) => transports[t].usable) ?? null;
  if (!transport && readable.length > 0) {
    const why = order
      .map((t) => {
        const c = transports[t];
        if (!c.available) return `${t}: ${c.reason}`;
        return `${t}: the account lacks ${c.missing.map((x) => `${x.privilege} on ${x.entity}`).join(', ')}`;
      })
      .join('; ');
    blockers.push(`no transport can read this VM's disks (${why})`);
  }

  let consolidationNeeded = false;
  try {
    const r = await retrieveOne(client, vm.ref, ['runtime'], opts);
    const rt = r.props.get('runtime');
    consolidationNeeded = rt ? boolOf(rt, 'consolidationNeeded') === true : false;
  } catch (e) {
    if (!(e instanceof CofferError)) throw e;
  }
  if (consolidationNeeded)
    warnings.push('vCenter says the VM needs disk consolidation: the next backup consolidates it first');

  const self = { host: hostname(), alive: () => true };
  const snapshots = vm.snapshots.map((s) => {
    const coffer = s.name.startsWith(SNAPSHOT_PREFIX);
    return { name: s.name, moref: s.ref.value, coffer, orphan: coffer && isOrphan(s.description, new Date(), self) };
  });
  for (const s of snapshots.filter((x) => x.coffer))
    warnings.push(
      s.orphan
        ? `Coffer snapshot ${s.name} was left by an interrupted backup: the next backup removes it`
        : `Coffer snapshot ${s.name} belongs to a backup that may still run (within its lease)`,
    );
  const others = snapshots.filter((x) => !x.coffer);
  if (others.length > 0)
    warnings.push(
      `${others.length} other snapshot(s) on the VM (${others.map((s) => s.name).join(', ')}): long chains slow the VM`,
    );
  if (vm.toolsRunningStatus !== 'guestToolsRunning')
    warnings.push('VMware Tools is not running: backups are crash-consistent (no quiescing)');

  return {
    name: vm.name,
    moref: vm.ref.value,
    path: vm.path,
    ok: blockers.length === 0,
    blockers,
    warnings,
    missing,
    cbt: { enabled: cbtOn },
    toolsRunningStatus: vm.toolsRunningStatus ?? null,
    consolidationNeeded,
    disks,
    transports,
    transport,
    snapshots,
  };
}
