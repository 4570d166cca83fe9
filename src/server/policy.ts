import { Cron } from 'croner';
import { z } from 'zod';
import { DEFAULT_SIGNAL_THRESHOLDS, type SignalThresholds } from '../engine/index.js';
import { CofferError } from '../shared/index.js';
import type { InventoryVm } from './config.js';
import { diskSource, pathLike, POLICY_ID } from './validation.js';

/** A cron expression croner accepts (5 fields, or 6 with seconds first); 7 fields (a year) are refused. */
export const cronSchema = z
  .string()
  .min(1)
  .max(200)
  .superRefine((s, ctx) => {
    const fields = s.trim().split(/\s+/).length;
    if (!s.trim().startsWith('@') && (fields < 5 || fields > 6)) {
      ctx.addIssue({
        code: 'custom',
        message:
          `invalid cron expression ${JSON.stringify(s)}: ${fields} fields (give 5: minute hour day month weekday, ` +
          'or 6 with seconds first)',
      });
      return;
    }
    try {
      new Cron(s, { paused: true }).stop();
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        message: `invalid cron expression ${JSON.stringify(s)}: ${(e as Error).message}`,
      });
    }
  });

/** VMs read from a configured vCenter: all of them, or those matching a name, a glob pattern and/or a folder. */
const vcenterSelector = z
  .strictObject({
    vcenter: z.string().min(1).max(64),
    /** exact VM name */
    name: z.string().min(1).max(512).optional(),
    /** glob on the VM name: `*` any run of characters, `?` one character */
    pattern: z.string().min(1).max(512).optional(),
    /** inventory path of a VM folder, e.g. /DC0/vm/prod: the VMs in it and its subfolders */
    folder: pathLike(1024).optional(),
  })
  .refine((s) => s.name !== undefined || s.pattern !== undefined || s.folder !== undefined, {
    message: 'give name, pattern or folder',
  });

const vmSelector = z.union([
  vcenterSelector,
  z.strictObject({
    /** A VM by name: from the inventory, or with its own disk sources (anything `openSource` accepts). */
    name: z.string().min(1).max(512),
    disks: z.array(diskSource).min(1).max(256).optional(),
  }),
  z.strictObject({
    /** Every inventory VM whose name matches: `*` any run of characters, `?` one character. */
    pattern: z.string().min(1).max(512),
  }),
]);

/**
 * Retention (GFS, engine forget) is a policy field: applied to each VM after each of its backups (server/retention.ts).
 * A retention that keeps nothing is refused (it would remove every restore point), as `coffer forget` refuses it.
 * It looks only at the restore points the policy made (tagged `coffer-policy:<policy id>`): points made by hand with
 * the CLI or by another policy are neither counted nor removed unless `removeOtherPoints` is true.
 * describeRetention (server/retention.ts) says in words what each rule keeps.
 */
export const RetentionSchema = z
  .strictObject({
    /** "keep N restore points": the N newest (count-based, whatever their age) */
    keepLast: z.number().int().min(0).max(100000).optional(),
    keepHourly: z.number().int().min(0).max(100000).optional(),
    keepDaily: z.number().int().min(0).max(100000).optional(),
    keepWeekly: z.number().int().min(0).max(100000).optional(),
    keepMonthly: z.number().int().min(0).max(100000).optional(),
    keepYearly: z.number().int().min(0).max(100000).optional(),
    /** also apply the rules to (and remove) the VM's restore points this policy did not make; default false */
    removeOtherPoints: z.boolean().optional(),
  })
  .refine((r) => Object.values(r).some((n) => typeof n === 'number' && n > 0), {
    message:
      'must keep something: at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly ' +
      'above 0 (an empty retention would remove every restore point)',
  });

/**
 * Ransomware signals of a policy's backups (DESIGN.md §Ransomware signals): the anomaly score's thresholds (each
 * optional: engine DEFAULT_SIGNAL_THRESHOLDS) and what a suspicious point triggers on the server: holds on it and on
 * the VM's last clean point before it (so retention cannot age the good data out during an incident), the
 * `point.suspicious` notification, and a file-level indicators follow-up job.
 */
export const SignalsPolicySchema = z
  .strictObject({
    suspiciousScore: z.number().int().min(1).max(100).optional(),
    historyPoints: z.number().int().min(1).max(1000).optional(),
    minHistoryPoints: z.number().int().min(0).max(1000).optional(),
    minIncompressibleShare: z.number().min(0).max(1).optional(),
    minChangedShare: z.number().min(0).max(1).optional(),
    medianFactor: z.number().min(1).max(1000).optional(),
    spreadFactor: z.number().min(0).max(1000).optional(),
    minIncompressibleFraction: z.number().min(0).max(1).optional(),
    /** hold the suspicious point and the VM's last clean point before it; default true */
    holdOnSuspicious: z.boolean().default(true),
    /** how long those holds last, in days; 0: until removed by hand (`coffer hold remove`); default 30 */
    holdDays: z.number().int().min(0).max(36500).default(30),
    /** queue a file-level indicators job (ransom notes, renames, high-entropy rewrites) for a suspicious point */
    fileIndicators: z.boolean().default(true),
  })
  .refine((s) => s.minHistoryPoints === undefined || s.minHistoryPoints <= (s.historyPoints ?? 10), {
    message: 'minHistoryPoints must not exceed historyPoints (default 10)',
  });

/**
 * The boot part of a check (`coffer check --boot`, FORMAT.md §8.1 `boot`), in a policy's `check` and a check job's
 * body: the success signal (the marker on the serial console, or `agent`: the QEMU guest agent answers), forwarded
 * guest ports and a boot script. The script is a file name in the server's `bootScriptsDir` (config), never a path:
 * who may change policies or start jobs must not choose what runs on the server.
 */
export const BootCheckSpecSchema = z.strictObject({
  marker: z.string().min(1).max(256).default('login:'),
  timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
  /** success = the QEMU guest agent (qemu-ga in the guest) answers guest-sync and guest-ping, instead of the marker */
  agent: z.boolean().optional(),
  /** guest TCP ports forwarded from 127.0.0.1 for the script (restricted user networking); none: no network */
  forward: z.array(z.number().int().min(1).max(65535)).min(1).max(16).optional(),
  /** a boot script: the name of an executable in the server's bootScriptsDir, run after the success signal */
  script: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "must be a file name in the server's bootScriptsDir (no path)")
    .optional(),
  scriptTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
});
export type BootCheckSpec = z.infer<typeof BootCheckSpecSchema>;

/**
 * Recoverability checks of a policy's points (DESIGN.md §Recoverability checks): a `check` job is queued after a
 * backup when the VM has at least `everyPoints` restore points since its last checked one (1: after every backup).
 */
export const CheckPolicySchema = z.strictObject({
  everyPoints: z.number().int().min(1).max(10000).default(1),
  /** per filesystem checker run */
  timeoutMinutes: z
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(10),
  /** also boot each checked point in QEMU (no network, -snapshot); passes when `marker` is on the serial console */
  boot: z.lazy(() => BootCheckSpecSchema).optional(),
});

export const PolicySpecSchema = z.strictObject({
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$/,
      'must be 1-64 letters, digits, space, ".", "_" or "-", starting with a letter or digit',
    )
    .refine((n) => !POLICY_ID.test(n), {
      message: 'must not look like a policy id (12 hex digits): it would shadow that policy on GET/PUT/DELETE by id',
    }),
  description: z.string().max(1000).default(''),
  enabled: z.boolean().default(true),
  repository: z.string().min(1).max(64),
  vms: z.array(vmSelector).min(1).max(1000),
  /** Backup schedule (cron); none: on demand only. */
  schedule: cronSchema.optional(),
  /** Recovery point objective: a VM is compliant while its newest restore point is younger than this. */
  rpoHours: z
    .number()
    .positive()
    .max(24 * 366)
    .default(24),
  retention: RetentionSchema.optional(),
  /** After a backup's retention removed restore points, queue a prune (garbage collection) of the repository. */
  pruneAfterForget: z.boolean().default(false),
  verify: z
    .strictObject({
      schedule: cronSchema,
      readDataPercent: z.number().min(0).max(100).default(0),
    })
    .optional(),
  tags: z.array(z.string().min(1).max(128)).max(32).default([]),
  /** ransomware signal thresholds and the response to a suspicious point; absent: default thresholds, no holds */
  signals: SignalsPolicySchema.optional(),
  /** recoverability checks after backups; absent: none */
  check: CheckPolicySchema.optional(),
});

export type PolicySpec = z.infer<typeof PolicySpecSchema>;

/** What a policy says about signals, with every default filled in. */
export interface PolicySignals {
  thresholds: SignalThresholds;
  /** only the thresholds the policy sets (what a backup job description carries) */
  overrides: Partial<SignalThresholds>;
  holdOnSuspicious: boolean;
  holdDays: number;
  fileIndicators: boolean;
}

/**
 * A policy without a `signals` section scores with the defaults and notifies (`point.suspicious`), but neither holds
 * nor queues the indicators job: the response is opt-in ("if the policy says so", issue 18) so that existing policies
 * keep their retention as it was. With a section, both default to on.
 */
export function policySignals(p: Pick<PolicySpec, 'signals'>): PolicySignals {
  const on = p.signals !== undefined;
  const { holdOnSuspicious = on, holdDays = 30, fileIndicators = on, ...rest } = p.signals ?? {};
  const overrides: Partial<SignalThresholds> = {};
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) overrides[k as keyof SignalThresholds] = v;
  return {
    thresholds: { ...DEFAULT_SIGNAL_THRESHOLDS, ...overrides },
    overrides,
    holdOnSuspicious,
    holdDays,
    fileIndicators,
  };
}

export interface Policy extends PolicySpec {
  id: string;
  createdAt: string;
  updatedAt: string;
}

export interface ResolvedVm {
  name: string;
  disks: string[];
  /** set for a VM read from a vCenter: its disks are one vsphere://HOST:PORT/MOREF */
  vcenter?: string;
}

/** A vCenter whose inventory could not be read (the selectors naming it resolve to nothing). */
export interface VcenterError {
  vcenter: string;
  code: string;
  message: string;
}

/** The VMs a policy covers, with their disk sources. A named VM missing from the inventory is an error of that VM. */
export function resolvePolicyVms(
  policy: PolicySpec,
  allInventory: readonly InventoryVm[],
  vcenterErrors: ReadonlyMap<string, { code: string; message: string }> = new Map(),
): { vms: ResolvedVm[]; missing: string[]; vcenterErrors: VcenterError[] } {
  const out = new Map<string, ResolvedVm>();
  const missing: string[] = [];
  const errors = new Map<string, VcenterError>();
  const inventory = allInventory.filter((v) => v.vcenter === undefined);
  for (const sel of policy.vms) {
    if ('vcenter' in sel) {
      const err = vcenterErrors.get(sel.vcenter);
      if (err) {
        errors.set(sel.vcenter, { vcenter: sel.vcenter, ...err });
        continue;
      }
      const re = sel.pattern !== undefined ? globToRegExp(sel.pattern) : undefined;
      const folder = sel.folder?.replace(/^\/*/, '/').replace(/\/+$/, '');
      let found = false;
      for (const v of allInventory) {
        if (v.vcenter !== sel.vcenter) continue;
        if (sel.name !== undefined && v.name !== sel.name) continue;
        if (re && !re.test(v.name)) continue;
        if (folder !== undefined && !(v.path ?? '').startsWith(`${folder}/`)) continue;
        found = true;
        if (!out.has(v.name)) out.set(v.name, { name: v.name, disks: [...v.disks], vcenter: v.vcenter });
      }
      if (!found && sel.name !== undefined) missing.push(sel.name);
    } else if ('pattern' in sel) {
      const re = globToRegExp(sel.pattern);
      for (const v of inventory)
        if (re.test(v.name) && !out.has(v.name)) out.set(v.name, { name: v.name, disks: [...v.disks] });
    } else if (sel.disks) {
      out.set(sel.name, { name: sel.name, disks: [...sel.disks] });
    } else {
      const v = inventory.find((x) => x.name === sel.name);
      if (v) out.set(v.name, { name: v.name, disks: [...v.disks] });
      else missing.push(sel.name);
    }
  }
  return { vms: [...out.values()], missing, vcenterErrors: [...errors.values()] };
}

export function globToRegExp(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/** Retention status as reported by the API. */
export function retentionStatus(p: PolicySpec): { configured: boolean; applied: boolean; status: string } {
  return {
    configured: p.retention !== undefined,
    applied: p.retention !== undefined,
    status: p.retention ? 'applied after each backup' : 'none',
  };
}

export function checkPolicyRepository(
  spec: PolicySpec,
  repositories: readonly string[],
  vcenters: readonly string[] = [],
): void {
  spec.vms.forEach((sel, i) => {
    if ('vcenter' in sel && !vcenters.includes(sel.vcenter)) {
      throw new CofferError(
        'USAGE',
        `invalid policy: vms[${i}].vcenter: unknown vCenter ${JSON.stringify(sel.vcenter)} ` +
          `(configured: ${vcenters.join(', ') || 'none'})`,
      );
    }
  });
  if (!repositories.includes(spec.repository)) {
    throw new CofferError(
      'USAGE',
      `invalid policy: repository: unknown repository ${JSON.stringify(spec.repository)} ` +
        `(configured: ${repositories.join(', ') || 'none'})`,
    );
  }
}
