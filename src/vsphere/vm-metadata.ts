import { CofferError, type Logger, type Op } from '../shared/index.js';
import { PbmClient, type StoragePolicy } from './pbm-client.js';
import { retrieveOne } from './property-collector.js';
import { TaggingClient, type TagRef } from './tagging-client.js';
import type { VimClient } from './vim-client.js';
import type { StoredVmConfig } from './vm-config.js';
import { children, textOf, type MoRef, type SoapObject } from './xml.js';

/*
 * What a VM carries besides its hardware (FORMAT.md §6.1.2): the storage policy of each disk (PBM), its tags (vAPI
 * tagging) and custom attribute values (CustomFieldsManager). Read best effort at backup (a vCenter without the
 * service, or a user without the privilege, gives a warning, not a failed backup); applied to a new VM at restore.
 */

export interface VmMetadata {
  /** per disk, in restore-point order: the policy, or null (none: the datastore's default) */
  storagePolicies?: (StoragePolicy | null)[];
  tags?: TagRef[];
  customAttributes?: { name: string; value: string }[];
  warnings: string[];
}

/** Reads the disks' storage policies, the tags and the custom attribute values of `vm`. */
export async function fetchVmMetadata(
  client: VimClient,
  vm: MoRef,
  diskKeys: readonly number[],
  op: Op & { logger?: Logger | undefined } = {},
): Promise<VmMetadata> {
  const out: VmMetadata = { warnings: [] };
  const best = async (what: string, f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      if (op.signal?.aborted) throw e;
      out.warnings.push(`${what} not kept: ${(e as Error).message}`);
    }
  };
  await best('storage policies', async () => {
    const pbm = await PbmClient.connect(client, op);
    const ids = await pbm.diskPolicyIds(vm, diskKeys, op);
    if (ids.every((id) => id === undefined)) {
      out.storagePolicies = ids.map(() => null);
      return;
    }
    const all = await pbm.storagePolicies(op);
    out.storagePolicies = ids.map((id) => {
      if (id === undefined) return null;
      return { id, name: all.find((p) => p.id === id)?.name ?? '' };
    });
  });
  await best('tags', async () => {
    const t = await TaggingClient.connect(client, op);
    try {
      out.tags = await t.attachedTags(vm, op);
    } finally {
      await t.close();
    }
  });
  await best('custom attributes', async () => {
    out.customAttributes = await customAttributes(client, vm, op);
  });
  for (const w of out.warnings) op.logger?.warn(w);
  return out;
}

async function customFields(client: VimClient, op: Op): Promise<{ key: string; name: string; type: string }[]> {
  const cfm = client.serviceContent.customFieldsManager;
  if (!cfm) return [];
  const f = (await retrieveOne(client, cfm, ['field'], op)).props.get('field');
  return (f ? children(f, 'CustomFieldDef') : []).map((d) => ({
    key: (textOf(d, 'key') ?? '').trim(),
    name: textOf(d, 'name') ?? '',
    type: (textOf(d, 'managedObjectType') ?? '').trim(),
  }));
}

async function customAttributes(client: VimClient, vm: MoRef, op: Op) {
  const v = (await retrieveOne(client, vm, ['customValue'], op)).props.get('customValue');
  const values = v ? children(v, 'CustomFieldValue') : [];
  if (values.length === 0) return [];
  const defs = await customFields(client, op);
  const out: { name: string; value: string }[] = [];
  for (const x of values) {
    const key = (textOf(x, 'key') ?? '').trim();
    const name = defs.find((d) => d.key === key)?.name;
    if (name !== undefined) out.push({ name, value: textOf(x, 'value') ?? '' });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** How a new VM gets the stored metadata: resolved against the target vCenter before anything is created. */
export interface MetadataPlan {
  /** per disk: the target's policy (by name), or undefined (the datastore's default) */
  storagePolicies: (StoragePolicy | undefined)[];
  /** the stored tags that exist at the target (attached after the import) */
  tags: (TagRef & { id: string })[];
  customAttributes: { name: string; value: string }[];
  warnings: string[];
}

/**
 * Resolves the stored metadata against the target vCenter: `storagePolicy` (a name, for every disk) or each disk's
 * stored policy by name, NOT_FOUND when the target has no policy of that name; stored tags that do not exist there
 * are warnings (never created: a tag's category decides its meaning, which is the administrator's to set up).
 */
export async function planVmMetadata(
  client: VimClient,
  cfg: StoredVmConfig,
  opts: Op & { storagePolicy?: string | undefined },
): Promise<MetadataPlan> {
  const plan: MetadataPlan = {
    storagePolicies: cfg.disks.map(() => undefined),
    tags: [],
    customAttributes: [],
    warnings: [],
  };
  const stored = cfg.disks.map((d) => d.storagePolicy ?? null);
  if (opts.storagePolicy !== undefined || stored.some((p) => p !== null)) {
    const pbm = await PbmClient.connect(client, opts);
    if (opts.storagePolicy !== undefined) {
      const p = await pbm.policyNamed(opts.storagePolicy, opts);
      plan.storagePolicies = cfg.disks.map(() => p);
    } else {
      const cache = new Map<string, StoragePolicy>();
      for (const [i, s] of stored.entries()) {
        if (!s) continue;
        if (!s.name)
          throw new CofferError('NOT_FOUND', `disk ${i}: the stored storage policy ${s.id} has no name to look up`, {
            hint: 'choose one with --storage-policy NAME',
          });
        if (!cache.has(s.name)) cache.set(s.name, await pbm.policyNamed(s.name, opts));
        plan.storagePolicies[i] = cache.get(s.name);
      }
    }
  }
  if (cfg.tags && cfg.tags.length > 0) {
    const t = await TaggingClient.connect(client, opts);
    try {
      const all = await t.allTags(opts);
      for (const want of cfg.tags) {
        const hit = all.find((x) => x.category === want.category && x.name === want.name);
        if (hit) plan.tags.push(hit);
        else
          plan.warnings.push(
            `tag ${want.category}/${want.name} does not exist in the target vCenter: not attached (create it and ` +
              'attach it by hand)',
          );
      }
    } finally {
      await t.close();
    }
  }
  plan.customAttributes = cfg.customAttributes ?? [];
  return plan;
}

/** The `profile` of a disk's device change (VirtualDeviceConfigSpec.profile) for a policy. */
export function diskProfileSpec(p: StoragePolicy): SoapObject[] {
  return [{ _type: 'VirtualMachineDefinedProfileSpec', profileId: p.id }];
}

/**
 * Attaches the planned tags and sets the custom attributes on the new VM. A custom attribute whose definition the
 * target lacks gets it created (a VirtualMachine field of that name). Failures are returned as warnings: the VM and
 * its disks are restored by then.
 */
export async function applyVmMetadata(
  client: VimClient,
  vm: MoRef,
  plan: MetadataPlan,
  op: Op = {},
): Promise<string[]> {
  const warnings: string[] = [];
  if (plan.tags.length > 0) {
    try {
      const t = await TaggingClient.connect(client, op);
      try {
        for (const tag of plan.tags) await t.attach(tag.id, vm, op);
      } finally {
        await t.close();
      }
    } catch (e) {
      warnings.push(`tags not attached: ${(e as Error).message}`);
    }
  }
  if (plan.customAttributes.length > 0) {
    try {
      const cfm = client.serviceContent.customFieldsManager;
      if (!cfm) throw new CofferError('VSPHERE_FAULT', 'vCenter has no custom fields manager');
      const defs = await customFields(client, op);
      for (const a of plan.customAttributes) {
        let def = defs.find((d) => d.name === a.name && (d.type === 'VirtualMachine' || d.type === ''));
        if (!def) {
          const r = await client.invoke('AddCustomFieldDef', cfm, { name: a.name, moType: 'VirtualMachine' }, op);
          const rv = children(r, 'returnval')[0];
          def = { key: (rv && textOf(rv, 'key'))?.trim() ?? '', name: a.name, type: 'VirtualMachine' };
          defs.push(def);
        }
        await client.invoke('SetField', cfm, { entity: vm, key: Number(def.key), value: a.value }, op);
      }
    } catch (e) {
      warnings.push(`custom attributes not set: ${(e as Error).message}`);
    }
  }
  return warnings;
}
