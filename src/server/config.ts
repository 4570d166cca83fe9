import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { diskSource } from './validation.js';
import { CofferError } from '../shared/index.js';

/**
 * The server's config file (JSON, docs/DESIGN.md §Server). Everything is optional: a fresh data directory with no
 * config is an empty server. Unknown keys are errors (a typo must not silently disable a setting).
 */
const name = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

export const RepositoryConfigSchema = z
  .strictObject({
    name,
    /** Whatever the composition root's openStore accepts (today: a directory or file:// URL). */
    location: z.string().min(1),
    passwordFile: z.string().min(1).optional(),
    passwordEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    /** Jobs that may run at once on this repository (default: limits.perRepository). */
    maxConcurrentJobs: z.number().int().min(1).max(64).optional(),
  })
  .refine((r) => (r.passwordFile === undefined) !== (r.passwordEnv === undefined), {
    message: 'exactly one of passwordFile and passwordEnv is required',
  });

export const InventoryVmSchema = z.strictObject({
  name: z.string().min(1).max(512),
  /** Disk sources in order, each whatever `openSource` accepts (paths, file://, nbd://). */
  disks: z.array(diskSource).min(1).max(256),
  /** where the VM lives, for placement (docs/DESIGN.md §Proxies and placement): its cluster and datastores */
  cluster: z.string().min(1).max(256).optional(),
  datastores: z.array(z.string().min(1).max(256)).max(64).optional(),
});

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');

/** A vCenter whose VMs policies may select (credentials come from the environment, never the catalog). */
export const VcenterConfigSchema = z
  .strictObject({
    name,
    url: z
      .string()
      .regex(
        /^vsphere:\/\/(\[[^\]]+\]|[^:/?#@[\]]+)(:\d{1,5})?\/?$/i,
        'must be vsphere://HOST[:PORT] (no user, no VM)',
      ),
    userEnv: envName,
    passwordEnv: envName,
    /** SHA-256 fingerprint of the vCenter certificate (a self-signed vCenter) */
    thumbprint: z.string().min(1).max(200).optional(),
    /** do not verify the certificate at all (lab use only) */
    insecureTls: z.boolean().default(false),
  })
  .refine((v) => !(v.thumbprint && v.insecureTls), {
    message: 'thumbprint and insecureTls exclude each other',
    path: ['insecureTls'],
  });

/** Every notification event (server/notifier.ts says when each is sent). */
export const NOTIFICATION_EVENTS = [
  'job.failed',
  'job.succeeded',
  'job.first-failure',
  'job.recovered',
  'sla.breach',
  'point.suspicious',
  'point.indicators',
] as const;

export const WebhookSchema = z.strictObject({
  url: z
    .string()
    .url()
    .refine((u) => /^https?:/.test(u), 'must be an http or https URL'),
  events: z
    .array(z.enum(NOTIFICATION_EVENTS))
    .min(1)
    .default(['job.failed', 'sla.breach', 'point.suspicious', 'point.indicators']),
  /** Sent as `Authorization: Bearer ...` (read from this environment variable). */
  tokenEnv: z.string().optional(),
});

export const SmtpSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  secure: z.boolean().default(false),
  from: z.string().min(3),
  to: z.array(z.string().min(3)).min(1),
  events: z
    .array(z.enum(NOTIFICATION_EVENTS))
    .min(1)
    .default(['job.failed', 'sla.breach', 'point.suspicious', 'point.indicators']),
  userEnv: z.string().optional(),
  passwordEnv: z.string().optional(),
});

export const ServerConfigSchema = z.strictObject({
  repositories: z.array(RepositoryConfigSchema).default([]),
  /** VMs known to the server (a static inventory; a vSphere inventory plugs in beside it). */
  inventory: z.array(InventoryVmSchema).default([]),
  /** vCenters whose inventory policies select VMs from (`{ vcenter, pattern | folder | name }`). */
  vcenters: z.array(VcenterConfigSchema).default([]),
  limits: z
    .strictObject({
      perRepository: z.number().int().min(1).max(64).default(2),
      perSource: z.number().int().min(1).max(64).default(1),
      total: z.number().int().min(1).max(256).default(4),
      /** backups reading from one datastore at once, over every proxy (VMs with `datastores` in the inventory) */
      perDatastore: z.number().int().min(1).max(256).default(4),
    })
    .prefault({}),
  retries: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(20).default(3),
      backoffSeconds: z.number().min(0).max(3600).default(30),
    })
    .prefault({}),
  /** Instant recoveries (POST /api/v1/instant-recoveries): NBD exports of restore point disks, served by the server. */
  instantRecovery: z
    .strictObject({
      /** address the NBD exports listen on (each on a free port); NBD is unencrypted: keep it on a trusted network */
      listen: z.string().min(1).max(255).default('127.0.0.1'),
      /** exports at once */
      max: z.number().int().min(1).max(64).default(8),
    })
    .prefault({}),
  /** Restore jobs may only write below these directories (default: DATA/restores). */
  restoreDirs: z.array(z.string().min(1)).optional(),
  /**
   * boot scripts that policies and check jobs may name (`check.boot.script`: a file name in this directory; the
   * same directory on the proxies that run check jobs); none: boot scripts are refused
   */
  bootScriptsDir: z.string().min(1).optional(),
  http: z
    .strictObject({
      bodyLimitBytes: z
        .number()
        .int()
        .min(1024)
        .max(64 * 1024 * 1024)
        .default(1024 * 1024),
      /** /metrics without a token (for a Prometheus on a trusted network). */
      publicMetrics: z.boolean().default(false),
      sessionHours: z
        .number()
        .min(0.1)
        .max(24 * 30)
        .default(12),
      /** failed logins allowed per remote address in 15 minutes; then its logins fail until the window has passed */
      loginMaxFailures: z.number().int().min(1).max(10000).default(20),
      /** a client gets this long to send its whole request, body included (slow-loris); then 408 */
      requestTimeoutSeconds: z.number().min(1).max(3600).default(30),
    })
    .prefault({}),
  /** The audit log keeps rows for this many days (older ones are deleted at start and every hour). */
  audit: z
    .strictObject({
      retentionDays: z.number().int().min(1).max(36500).default(365),
    })
    .prefault({}),
  notifications: z
    .strictObject({
      webhooks: z.array(WebhookSchema).default([]),
      smtp: SmtpSchema.optional(),
    })
    .prefault({}),
  /** How often RPO compliance is evaluated (SLA breach notifications). */
  slaCheckSeconds: z.number().min(1).max(86400).default(60),
  /** the server runs jobs itself as one of the proxies (false: only remote `coffer proxy` processes run jobs) */
  localProxy: z.boolean().default(true),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
    .prefault({}),
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;
export type RepositoryConfig = z.infer<typeof RepositoryConfigSchema>;
export type VcenterConfig = z.infer<typeof VcenterConfigSchema>;
/** A VM the server knows: from the static inventory, or (with `vcenter`) read from a vCenter. */
export type InventoryVm = z.infer<typeof InventoryVmSchema> & { vcenter?: string; path?: string };

/** "repositories[0].passwordFile: exactly one of ..." for each issue, most precise path first. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root = ''): string {
  return precise(issues)
    .map((i) => {
      const p = i.path.reduce<string>(
        (acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)),
        root,
      );
      return `${p || '(root)'}: ${i.message}`;
    })
    .join('; ');
}

/**
 * A union's "Invalid input" replaced by the issues of the one alternative the value was meant for: the only one
 * that did not reject its keys (e.g. a `{ vcenter, pattern: 5 }` VM selector: "vms[0].pattern: expected string").
 */
function precise(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  return issues.flatMap((i) => {
    if (i.code !== 'invalid_union' || !('errors' in i) || !Array.isArray(i.errors)) return [i];
    // not meant: an alternative that rejects a key of the value or misses one of its own required keys
    const missing = (x: z.core.$ZodIssue) => x.code === 'invalid_type' && /received undefined$/.test(x.message);
    const meant = (i.errors as z.core.$ZodIssue[][]).filter(
      (b) => b.length > 0 && !b.some((x) => x.code === 'unrecognized_keys' || missing(x)),
    );
    if (meant.length !== 1) return [i];
    return precise(meant[0]!).map((x) => ({ ...x, path: [...i.path, ...x.path] }) as z.core.$ZodIssue);
  });
}

/** Parses a value against a schema or throws USAGE with every bad field and its path. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, what: string, root = ''): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new CofferError('USAGE', `invalid ${what}: ${formatIssues(r.error.issues, root)}`, {
      details: { issues: precise(r.error.issues).map((i) => ({ path: i.path.map(String), message: i.message })) },
    });
  }
  return r.data;
}

export async function loadConfig(file: string | undefined, dataDir: string): Promise<ServerConfig> {
  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new CofferError('USAGE', `cannot read config file ${file}: ${(e as Error).message}`);
    }
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new CofferError('USAGE', `config file ${file} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const config = parseWith(ServerConfigSchema, raw, `config file ${file ?? '(none)'}`);
  const names = new Set<string>();
  config.repositories.forEach((r, i) => {
    if (names.has(r.name))
      throw new CofferError(
        'USAGE',
        `invalid config file ${file}: repositories[${i}].name: duplicate repository name ${JSON.stringify(r.name)}`,
      );
    names.add(r.name);
  });
  const vms = new Set<string>();
  config.inventory.forEach((v, i) => {
    if (vms.has(v.name))
      throw new CofferError(
        'USAGE',
        `invalid config file ${file}: inventory[${i}].name: duplicate VM name ${JSON.stringify(v.name)}`,
      );
    vms.add(v.name);
  });
  const vcs = new Set<string>();
  config.vcenters.forEach((v, i) => {
    if (vcs.has(v.name))
      throw new CofferError(
        'USAGE',
        `invalid config file ${file}: vcenters[${i}].name: duplicate vCenter name ${JSON.stringify(v.name)}`,
      );
    vcs.add(v.name);
  });
  const base = file ? resolve(file, '..') : process.cwd();
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  for (const r of config.repositories) {
    if (r.passwordFile) r.passwordFile = abs(r.passwordFile);
  }
  config.restoreDirs = (config.restoreDirs ?? [join(dataDir, 'restores')]).map(abs);
  if (config.bootScriptsDir) config.bootScriptsDir = abs(config.bootScriptsDir);
  return config;
}

/** The password of a configured repository, read at use time (never stored in the catalog). */
export async function repositoryPassword(
  r: RepositoryConfig,
  env: Record<string, string | undefined>,
): Promise<string> {
  if (r.passwordFile) {
    let text: string;
    try {
      text = await readFile(r.passwordFile, 'utf8');
    } catch (e) {
      throw new CofferError(
        'USAGE',
        `repository ${r.name}: cannot read password file ${r.passwordFile}: ${(e as Error).message}`,
      );
    }
    const pw = text.replace(/\r?\n$/, '');
    if (!pw) throw new CofferError('USAGE', `repository ${r.name}: password file ${r.passwordFile} is empty`);
    return pw;
  }
  const pw = env[r.passwordEnv!];
  if (!pw) throw new CofferError('USAGE', `repository ${r.name}: environment variable ${r.passwordEnv} is not set`);
  return pw;
}
