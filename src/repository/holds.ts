import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { BlobStore } from '../storage/index.js';
import { CofferError, HEX32, type Op } from '../shared/index.js';
import { JsonReader } from '../format/index.js';
import { HOLDS_PREFIX, holdBlob } from './layout.js';

/** A hold on a restore point (FORMAT.md §10): forget never removes a point with an active hold. */
export interface Hold {
  /** blob name, 'holds/<point>/<time>-<nonce>' */
  name: string;
  pointId: string;
  createdAt: string;
  /** ISO 8601; absent: until the hold is removed */
  until?: string;
  reason?: string;
  host: string;
  user: string;
}

const NAME_RE = /^holds\/([0-9a-f]{32})\/(\d{15})-([0-9a-f]{8})$/;

export async function addHold(
  store: BlobStore,
  pointId: string,
  opts: { until?: string; reason?: string; now?: number } = {},
  op?: Op,
): Promise<Hold> {
  if (!HEX32.test(pointId)) throw new CofferError('INTERNAL', `bad point id ${pointId}`);
  const now = opts.now ?? Date.now();
  const name = holdBlob(pointId, now, randomBytes(4).toString('hex'));
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  const hold: Hold = {
    name,
    pointId,
    createdAt: new Date(now).toISOString(),
    ...(opts.until !== undefined ? { until: opts.until } : {}),
    ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
    host: hostname(),
    user,
  };
  const { name: _n, ...body } = hold;
  await store.put(name, Buffer.from(JSON.stringify(body)), op);
  return hold;
}

/** Every hold, or those of one point; unreadable hold blobs are reported as holds without an end (safe side). */
export async function listHolds(store: BlobStore, pointId?: string, op?: Op): Promise<Hold[]> {
  const out: Hold[] = [];
  for await (const b of store.list(pointId ? `${HOLDS_PREFIX}${pointId}/` : HOLDS_PREFIX, op)) {
    const m = NAME_RE.exec(b.name);
    if (!m) continue;
    const base = {
      name: b.name,
      pointId: m[1]!,
      createdAt: new Date(Number(m[2])).toISOString(),
      host: '?',
      user: '?',
    };
    try {
      const r = JsonReader.parse(`hold ${b.name}`, await store.get(b.name, undefined, op));
      const until = r.optStr('until', 64);
      const reason = r.optStr('reason', 4096);
      if (until !== undefined && Number.isNaN(Date.parse(until)))
        throw new CofferError('CORRUPT', `hold ${b.name}: bad until`);
      out.push({
        ...base,
        createdAt: r.str('createdAt', 64),
        host: r.str('host', 256),
        user: r.str('user', 256),
        ...(until !== undefined ? { until } : {}),
        ...(reason !== undefined ? { reason } : {}),
      });
    } catch (e) {
      if (e instanceof CofferError && e.code === 'NOT_FOUND') continue; // removed while listing
      if (!(e instanceof CofferError) || e.code !== 'CORRUPT') throw e;
      out.push({ ...base, reason: `unreadable hold (${e.message})` });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes every hold of a point; returns how many there were. */
export async function removeHolds(store: BlobStore, pointId: string, op?: Op): Promise<number> {
  let n = 0;
  for (const h of await listHolds(store, pointId, op)) {
    await store.delete(h.name as never, op);
    n++;
  }
  return n;
}
