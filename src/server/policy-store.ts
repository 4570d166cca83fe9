import { randomBytes } from 'node:crypto';
import { CofferError } from '../shared/index.js';
import type { Db } from './catalog.js';
import type { Policy, PolicySpec } from './policy.js';

interface Row {
  id: string;
  name: string;
  spec: string;
  created_at: string;
  updated_at: string;
}

const fromRow = (r: Row): Policy => ({ ...(JSON.parse(r.spec) as PolicySpec), id: r.id, createdAt: r.created_at, updatedAt: r.updated_at });

/** Policies in the catalog (validated before they get here: policy.ts). */
export class PolicyStore {
  constructor(private readonly db: Db) {}

  list(): Policy[] {
    return (this.db.prepare('SELECT * FROM policies ORDER BY name').all() as Row[]).map(fromRow);
  }

  get(id: string): Policy {
    const r = this.db.prepare('SELECT * FROM policies WHERE id = ?').get(id) as Row | undefined;
    if (!r) throw new CofferError('NOT_FOUND', `no policy ${JSON.stringify(id)}`);
    return fromRow(r);
  }

  create(spec: PolicySpec): Policy {
    const id = randomBytes(6).toString('hex');
    const now = new Date().toISOString();
    try {
      this.db.prepare('INSERT INTO policies(id, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)').run(id, spec.name, JSON.stringify(spec), now, now);
    } catch (e) {
      if (String((e as { code?: string }).code).startsWith('SQLITE_CONSTRAINT')) throw new CofferError('CONFLICT', `a policy named ${JSON.stringify(spec.name)} already exists`);
      throw e;
    }
    return this.get(id);
  }

  update(id: string, spec: PolicySpec): Policy {
    this.get(id);
    try {
      this.db.prepare('UPDATE policies SET name = ?, spec = ?, updated_at = ? WHERE id = ?').run(spec.name, JSON.stringify(spec), new Date().toISOString(), id);
    } catch (e) {
      if (String((e as { code?: string }).code).startsWith('SQLITE_CONSTRAINT')) throw new CofferError('CONFLICT', `a policy named ${JSON.stringify(spec.name)} already exists`);
      throw e;
    }
    return this.get(id);
  }

  delete(id: string): void {
    this.get(id);
    this.db.prepare('DELETE FROM policies WHERE id = ?').run(id);
  }
}
