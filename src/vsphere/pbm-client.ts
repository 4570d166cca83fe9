import { CofferError, type Op } from '../shared/index.js';
import { faultError, parseFault, type VimClient } from './vim-client.js';
import {
  MoRef,
  NS_SOAPENV,
  child,
  children,
  envelope,
  escapeXml,
  parseXml,
  refOf,
  textOf,
  type SoapValue,
} from './xml.js';

/** A storage policy (SPBM profile) as vCenter names it. */
export interface StoragePolicy {
  id: string;
  name: string;
}

const PBM_SERVICE_INSTANCE = new MoRef('PbmServiceInstance', 'ServiceInstance');

/**
 * A small client of vCenter's storage policy service (PBM, SOAP namespace urn:pbm at /pbm), riding on a vim25
 * session: the session cookie goes both as the HTTP cookie and as the `vcSessionCookie` SOAP header, as vCenter
 * wants it. Faults become CofferErrors as in VimClient (VSPHERE_FAULT with the fault type in details.fault).
 */
export class PbmClient {
  private constructor(
    private readonly vim: VimClient,
    private readonly profileManager: MoRef,
  ) {}

  static async connect(vim: VimClient, op: Op = {}): Promise<PbmClient> {
    const res = await call(vim, 'PbmRetrieveServiceContent', PBM_SERVICE_INSTANCE, {}, op);
    const pm = refOf(child(res, 'returnval') ?? res, 'profileManager');
    if (!pm)
      throw new CofferError('VSPHERE_FAULT', 'vCenter storage policy service sent no profile manager', {
        details: { protocol: true },
      });
    return new PbmClient(vim, pm);
  }

  /** The policy id associated with each disk of `vm` (undefined: none, the datastore's default applies). */
  async diskPolicyIds(vm: MoRef, diskKeys: readonly number[], op: Op = {}): Promise<(string | undefined)[]> {
    const out: (string | undefined)[] = [];
    for (const key of diskKeys) {
      const res = await call(
        this.vim,
        'PbmQueryAssociatedProfile',
        this.profileManager,
        {
          entity: {
            _type: 'PbmServerObjectRef',
            objectType: 'virtualDiskId',
            key: `${vm.value}:${key}`,
            serverUuid: this.vim.serviceContent.instanceUuid ?? undefined,
          },
        },
        op,
      );
      const ids = children(res, 'returnval')
        .map((r) => textOf(r, 'uniqueId')?.trim())
        .filter(Boolean);
      out.push(ids[0]);
    }
    return out;
  }

  /** Every storage (requirement) policy of this vCenter. */
  async storagePolicies(op: Op = {}): Promise<StoragePolicy[]> {
    const q = await call(
      this.vim,
      'PbmQueryProfile',
      this.profileManager,
      {
        resourceType: { _type: 'PbmProfileResourceType', resourceType: 'STORAGE' },
        profileCategory: 'REQUIREMENT',
      },
      op,
    );
    const ids = children(q, 'returnval')
      .map((r) => textOf(r, 'uniqueId')?.trim())
      .filter((x): x is string => Boolean(x));
    if (ids.length === 0) return [];
    const res = await call(
      this.vim,
      'PbmRetrieveContent',
      this.profileManager,
      { profileIds: ids.map((id) => ({ _type: 'PbmProfileId', uniqueId: id })) },
      op,
    );
    return children(res, 'returnval').map((p) => {
      const idNode = child(p, 'profileId');
      return { id: ((idNode && textOf(idNode, 'uniqueId')) ?? '').trim(), name: (textOf(p, 'name') ?? '').trim() };
    });
  }

  /** The policy of that name (exact match); NOT_FOUND listing the ones there are. */
  async policyNamed(name: string, op: Op = {}): Promise<StoragePolicy> {
    const all = await this.storagePolicies(op);
    const hit = all.filter((p) => p.name === name);
    if (hit.length === 0)
      throw new CofferError('NOT_FOUND', `no storage policy ${JSON.stringify(name)} in the target vCenter`, {
        hint: `have ${all.map((p) => JSON.stringify(p.name)).join(', ') || 'none'}; choose one with --storage-policy`,
        details: { storagePolicy: name },
      });
    if (hit.length > 1) throw new CofferError('AMBIGUOUS', `${hit.length} storage policies are named ${name}`);
    return hit[0]!;
  }
}

async function call(vim: VimClient, method: string, self: MoRef, args: Record<string, SoapValue>, op: Op) {
  const cookie = vim.sessionCookie;
  const value = cookie?.replace(/^[^=]*=/, '').replace(/^"|"$/g, '');
  const header = value ? `<vcSessionCookie>${escapeXml(value)}</vcSessionCookie>` : '';
  const body = Buffer.from(envelope(method, self, args, 'urn:pbm', header), 'utf8');
  const headers: Record<string, string | number> = {
    'Content-Type': 'text/xml; charset=utf-8',
    SOAPAction: `urn:pbm/${vim.apiVersion || '6.5'}`,
    'Content-Length': body.length,
  };
  if (cookie) headers['Cookie'] = cookie;
  const reply = await vim.http.request({ method: 'POST', path: '/pbm', headers, body, signal: op.signal });
  const what = `vCenter storage policy service reply to ${method}`;
  const text = reply.body.toString('utf8');
  if (!text.trimStart().startsWith('<'))
    throw new CofferError('VSPHERE_FAULT', `${what} is not SOAP (HTTP ${reply.status})`, {
      details: { protocol: true, status: reply.status },
    });
  const doc = parseXml(text, what);
  const bodyEl = doc.name === 'Envelope' && doc.ns === NS_SOAPENV ? child(doc, 'Body') : undefined;
  if (!bodyEl)
    throw new CofferError('VSPHERE_FAULT', `${what} is not a SOAP envelope`, { details: { protocol: true } });
  const fault = child(bodyEl, 'Fault');
  if (fault) throw faultError(method, parseFault(fault));
  const res = bodyEl.children[0];
  if (!res || res.name !== `${method}Response`)
    throw new CofferError('VSPHERE_FAULT', `${what} carries <${res?.name ?? 'nothing'}>`, {
      details: { protocol: true },
    });
  return res;
}
