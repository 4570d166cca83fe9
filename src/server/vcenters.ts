import { asCofferError, CofferError, type Logger } from '../shared/index.js';
import {
  connectVsphere,
  loadInventory,
  openVsphereBackup,
  parseVsphereUrl,
  type VsphereVmBackup,
} from '../vsphere/index.js';
import type { InventoryVm, ServerConfig, VcenterConfig } from './config.js';

/** How long a vCenter's VM list is reused before it is read again. */
export const VCENTER_CACHE_MS = 60_000;

interface Entry {
  at: number;
  vms: InventoryVm[];
  error: { code: string; message: string } | undefined;
  loading: Promise<void> | undefined;
}

/** The credentials and TLS policy of a configured vCenter, read from the environment at use time. */
function connectParams(vc: VcenterConfig, env: Record<string, string | undefined>) {
  const user = env[vc.userEnv];
  const password = env[vc.passwordEnv];
  if (!user) throw new CofferError('USAGE', `vCenter ${vc.name}: environment variable ${vc.userEnv} is not set`);
  if (password === undefined)
    throw new CofferError('USAGE', `vCenter ${vc.name}: environment variable ${vc.passwordEnv} is not set`);
  return {
    tls: { thumbprint: vc.thumbprint, insecure: vc.insecureTls },
    // connectVsphere reads these two; the rest of the process environment is not passed on
    env: { COFFER_VSPHERE_USER: user, COFFER_VSPHERE_PASSWORD: password },
  };
}

function baseUrl(vc: VcenterConfig): string {
  const u = parseVsphereUrl(vc.url.replace(/\/$/, ''));
  return `vsphere://${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}`;
}

/**
 * The VMs of the configured vCenters (docs/DESIGN.md §Server, vCenter inventory): read through src/vsphere, kept for
 * VCENTER_CACHE_MS, each VM as an inventory entry whose one disk source is vsphere://HOST:PORT/MOREF. A vCenter that
 * cannot be read (credentials, TLS, network) keeps its coded error, which policies show; nothing throws.
 */
export class Vcenters {
  private readonly cache = new Map<string, Entry>();
  private byName: Map<string, InventoryVm> | undefined;

  constructor(
    private readonly config: ServerConfig,
    private readonly env: Record<string, string | undefined>,
    private readonly logger: Logger,
    private readonly ttlMs = VCENTER_CACHE_MS,
  ) {}

  get names(): string[] {
    return this.config.vcenters.map((v) => v.name);
  }

  /** Re-reads the vCenters whose cached VM list is older than the TTL (all of them with force). */
  async refresh(force = false): Promise<void> {
    await Promise.all(this.config.vcenters.map((vc) => this.load(vc, force)));
  }

  private load(vc: VcenterConfig, force: boolean): Promise<void> {
    const e = this.cache.get(vc.name);
    if (e?.loading) return e.loading;
    if (e && !force && Date.now() - e.at < this.ttlMs) return Promise.resolve();
    const entry: Entry = e ?? { at: 0, vms: [], error: undefined, loading: undefined };
    this.cache.set(vc.name, entry);
    entry.loading = (async () => {
      try {
        const p = connectParams(vc, this.env);
        const base = baseUrl(vc);
        const client = await connectVsphere(parseVsphereUrl(base), {
          ...p,
          logger: this.logger,
          signal: AbortSignal.timeout(30_000),
        });
        try {
          const inv = await loadInventory(client, { signal: AbortSignal.timeout(60_000) }, { vmConfig: false });
          entry.vms = inv.vms.map((v) => ({
            name: v.name,
            disks: [`${base}/${v.ref.value}`],
            vcenter: vc.name,
            path: v.path,
            // placement (docs/DESIGN.md §Proxies and placement): proxies per cluster, limits per datastore
            ...(v.cluster ? { cluster: v.cluster } : {}),
            datastores: v.datastores,
          }));
          entry.error = undefined;
        } finally {
          await client.close();
        }
      } catch (err) {
        const c = asCofferError(err);
        entry.vms = [];
        entry.error = { code: c.code, message: `vCenter ${vc.name}: ${c.message}` };
        this.logger.warn(`vCenter ${vc.name}: inventory not readable: [${c.code}] ${c.message}`);
      } finally {
        entry.at = Date.now();
        entry.loading = undefined;
        this.byName = undefined;
      }
    })();
    return entry.loading;
  }

  /**
   * One VM of inventory() by name (placement asks for every due and running job at every claim: a map, rebuilt when
   * a vCenter's list changes, not a scan of thousands of VMs).
   */
  vm(name: string): InventoryVm | undefined {
    if (!this.byName) {
      this.byName = new Map();
      for (const v of this.inventory()) if (!this.byName.has(v.name)) this.byName.set(v.name, v);
    }
    return this.byName.get(name);
  }

  /** The static inventory and the cached VMs of every vCenter. */
  inventory(): InventoryVm[] {
    return [...this.config.inventory, ...[...this.cache.values()].flatMap((e) => e.vms)];
  }

  /** vCenters whose last read failed, with the coded error. */
  errors(): Map<string, { code: string; message: string }> {
    const m = new Map<string, { code: string; message: string }>();
    for (const [name, e] of this.cache) if (e.error) m.set(name, e.error);
    return m;
  }
}

/**
 * Opens a VM of a configured vCenter for backup exactly as `coffer backup vsphere://...` does (openVsphereBackup:
 * snapshot, CBT, configuration; close() removes the snapshot). Without a VM (its vCenter was not readable when the
 * job was queued) it logs in to surface the coded error (VSPHERE_AUTH, VSPHERE_TLS ...) and otherwise fails.
 */
export async function openVcenterVm(
  config: ServerConfig,
  env: Record<string, string | undefined>,
  vcenter: string,
  spec: string | undefined,
  opts: { logger: Logger; signal: AbortSignal; quiesce?: boolean },
): Promise<VsphereVmBackup> {
  const vc = config.vcenters.find((v) => v.name === vcenter);
  if (!vc) throw new CofferError('USAGE', `vCenter ${JSON.stringify(vcenter)} is not in the server configuration`);
  const p = connectParams(vc, env);
  if (spec === undefined) {
    const client = await connectVsphere(parseVsphereUrl(baseUrl(vc)), {
      ...p,
      logger: opts.logger,
      signal: opts.signal,
    });
    await client.close();
    throw new CofferError(
      'VSPHERE_FAULT',
      `vCenter ${vc.name} was not readable when this job was queued; start the policy again to select its VMs`,
    );
  }
  if (!spec.startsWith(`${baseUrl(vc)}/`)) throw new CofferError('USAGE', `${spec} is not a VM of vCenter ${vc.name}`);
  return openVsphereBackup(spec, {
    ...p,
    logger: opts.logger,
    signal: opts.signal,
    quiesce: opts.quiesce ?? true,
    transport: 'http',
  });
}

/** The base URL (vsphere://HOST:PORT) of a configured vCenter; USAGE for a name not in the configuration. */
export function vcenterUrl(config: ServerConfig, vcenter: string): string {
  const vc = config.vcenters.find((v) => v.name === vcenter);
  if (!vc) throw new CofferError('USAGE', `vCenter ${JSON.stringify(vcenter)} is not in the server configuration`);
  return baseUrl(vc);
}

/**
 * What a remote proxy needs to reach a configured vCenter for one job (sent in its claim, over TLS or loopback only,
 * never stored): the base URL, the credentials read from the server's environment now, the TLS policy.
 */
export function vcenterAccess(
  config: ServerConfig,
  env: Record<string, string | undefined>,
  vcenter: string,
): { name: string; url: string; user: string; password: string; thumbprint?: string; insecureTls: boolean } {
  const vc = config.vcenters.find((v) => v.name === vcenter);
  if (!vc) throw new CofferError('USAGE', `vCenter ${JSON.stringify(vcenter)} is not in the server configuration`);
  const p = connectParams(vc, env);
  return {
    name: vc.name,
    url: baseUrl(vc),
    user: p.env.COFFER_VSPHERE_USER,
    password: p.env.COFFER_VSPHERE_PASSWORD,
    ...(vc.thumbprint ? { thumbprint: vc.thumbprint } : {}),
    insecureTls: vc.insecureTls,
  };
}
