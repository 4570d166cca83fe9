import { CofferError, type Op } from '../shared/index.js';
import type { VimClient } from './vim-client.js';
import type { MoRef } from './xml.js';

/** A vSphere tag by what identifies it across vCenters: its category's name and its own. */
export interface TagRef {
  category: string;
  name: string;
}

const BASE = '/rest/com/vmware/cis';
const MAX_TAGS = 10_000;

/**
 * vCenter's tagging service (vAPI REST, `/rest/com/vmware/cis/tagging/...`): a session made with the connection's
 * credentials (POST /rest/com/vmware/cis/session, header `vmware-api-session-id` afterwards), tags attached to a VM
 * read by category and name, existing tags attached. Replies are untrusted JSON: anything off-shape is VSPHERE_FAULT.
 */
export class TaggingClient {
  private constructor(
    private readonly vim: VimClient,
    private readonly session: string,
  ) {}

  static async connect(vim: VimClient, op: Op = {}): Promise<TaggingClient> {
    const r = await vim.http.request({
      method: 'POST',
      path: `${BASE}/session`,
      headers: { Authorization: vim.basicAuthorization(), 'Content-Length': 0 },
      signal: op.signal,
    });
    if (r.status === 401 || r.status === 403)
      throw new CofferError('VSPHERE_AUTH', `vCenter's tagging service refused the login (HTTP ${r.status})`);
    const v = value(r.status, r.body, 'session');
    if (typeof v !== 'string' || !v) throw bad('session', 'no session id');
    return new TaggingClient(vim, v);
  }

  private async rest(method: 'GET' | 'POST' | 'DELETE', path: string, body: unknown, op: Op): Promise<unknown> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const r = await this.vim.http.request({
      method,
      path: `${BASE}${path}`,
      headers: {
        'vmware-api-session-id': this.session,
        ...(data ? { 'Content-Type': 'application/json' } : {}),
        'Content-Length': data?.length ?? 0,
      },
      body: data,
      signal: op.signal,
      maxBytes: 16 * 1024 * 1024,
    });
    return value(r.status, r.body, path);
  }

  /** The tags attached to `vm`, by category and name (sorted). */
  async attachedTags(vm: MoRef, op: Op = {}): Promise<TagRef[]> {
    const ids = await this.rest(
      'POST',
      '/tagging/tag-association?~action=list-attached-tags',
      { object_id: { id: vm.value, type: vm.type } },
      op,
    );
    const list = strings(ids ?? [], 'attached tags');
    const cats = new Map<string, string>();
    const out: TagRef[] = [];
    for (const id of list) {
      const t = obj(await this.rest('GET', `/tagging/tag/id:${encodeURIComponent(id)}`, undefined, op), 'tag');
      const catId = str(t['category_id'], 'tag category id');
      if (!cats.has(catId)) {
        const c = obj(await this.rest('GET', `/tagging/category/id:${encodeURIComponent(catId)}`, undefined, op), 'c');
        cats.set(catId, str(c['name'], 'category name'));
      }
      out.push({ category: cats.get(catId)!, name: str(t['name'], 'tag name') });
    }
    return out.sort((a, b) => a.category.localeCompare(b.category) || a.name.localeCompare(b.name));
  }

  /** Every tag of this vCenter with its id, by category and name. */
  async allTags(op: Op = {}): Promise<(TagRef & { id: string })[]> {
    const cats = new Map<string, string>();
    for (const id of strings(await this.rest('GET', '/tagging/category', undefined, op), 'categories')) {
      const c = obj(await this.rest('GET', `/tagging/category/id:${encodeURIComponent(id)}`, undefined, op), 'c');
      cats.set(id, str(c['name'], 'category name'));
    }
    const out: (TagRef & { id: string })[] = [];
    for (const id of strings(await this.rest('GET', '/tagging/tag', undefined, op), 'tags')) {
      const t = obj(await this.rest('GET', `/tagging/tag/id:${encodeURIComponent(id)}`, undefined, op), 'tag');
      const category = cats.get(str(t['category_id'], 'tag category id'));
      if (category !== undefined) out.push({ id, category, name: str(t['name'], 'tag name') });
    }
    return out;
  }

  async attach(tagId: string, vm: MoRef, op: Op = {}): Promise<void> {
    await this.rest(
      'POST',
      `/tagging/tag-association/id:${encodeURIComponent(tagId)}?~action=attach`,
      { object_id: { id: vm.value, type: vm.type } },
      op,
    );
  }

  async close(): Promise<void> {
    await this.rest('DELETE', '/session', undefined, {}).catch(() => undefined);
  }
}

function bad(what: string, why: string): CofferError {
  return new CofferError('VSPHERE_FAULT', `vCenter tagging service reply (${what}): ${why}`, {
    details: { protocol: true },
  });
}

/** The `value` of a vAPI reply; a non-2xx status is VSPHERE_FAULT (NOT_FOUND for 404), with vCenter's message. */
function value(status: number, body: Buffer, what: string): unknown {
  const text = body.toString('utf8');
  let doc: unknown;
  try {
    doc = text.trim() ? JSON.parse(text) : undefined;
  } catch {
    throw bad(what, `not JSON (HTTP ${status})`);
  }
  if (status < 200 || status > 299) {
    const msg = JSON.stringify(doc ?? '').slice(0, 300);
    throw new CofferError(
      status === 404 ? 'NOT_FOUND' : 'VSPHERE_FAULT',
      `vCenter tagging ${what}: HTTP ${status} ${msg}`,
    );
  }
  if (doc === undefined) return undefined;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad(what, 'not an object');
  return (doc as Record<string, unknown>)['value'];
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what, 'not an object');
  return v as Record<string, unknown>;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > 4096) throw bad(what, 'not a string');
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_TAGS) throw bad(what, 'not a list');
  return v.map((x) => str(x, what));
}
