import { randomBytes } from 'node:crypto';
import { CofferError } from '../../shared/index.js';
import type { Policy, PolicySpec } from '../policy.js';
import { isConstraintError, type Db } from './db.js';

/** Policies (validated before they get here: policy.ts). Names are unique: a duplicate is CONFLICT. */
export interface PoliciesTable {
  /** by name */
  list(): Policy[];
  /** NOT_FOUND when there is none */
  get(id: string): Policy;
  create(spec: PolicySpec): Policy;
  update(id: string, spec: PolicySpec): Policy;
  delete(id: string): void;
}

interface Row {
  id: string;
  name: string;
  spec: string;
  created_at: string;
  updated_at: string;
}

const fromRow = (r: Row): Policy => ({
  ...(JSON.parse(r.spec) as PolicySpec),
  id: r.id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const duplicate = (e: unknown, spec: PolicySpec) =>
  isConstraintError(e) ? new CofferError('CONFLICT', `a policy named ${JSON.stringify(spec.name)} already exists`) : e;

export class SqlPolicies implements PoliciesTable {
  constructor(private readonly db: Db) {}

  list(): Policy[] {
    return (this.db.all('SELECT * FROM policies ORDER BY name') as Row[]).map(fromRow);
  }

  get(id: string): Policy {
    const r = this.db.get('SELECT * FROM policies WHERE id = ?', [id]) as Row | undefined;
    if (!r) throw new CofferError('NOT_FOUND', `no policy ${JSON.stringify(id)}`);
    return fromRow(r);
  }

  create(spec: PolicySpec): Policy {
    const id = randomBytes(6).toString('hex');
    const now = new Date().toISOString();
    try {
      this.db.run('INSERT INTO policies(id, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)', [
        id,
        spec.name,
        JSON.stringify(spec),
        now,
        now,
      ]);
    } catch (e) {
      throw duplicate(e, spec);
    }
    return this.get(id);
  }

  update(id: string, spec: PolicySpec): Policy {
    this.get(id);
    try {
      this.db.run('UPDATE policies SET name = ?, spec = ?, updated_at = ? WHERE id = ?', [
        spec.name,
        JSON.stringify(spec),
        new Date().toISOString(),
        id,
      ]);
    } catch (e) {
      throw duplicate(e, spec);
    }
    return this.get(id);
  }

  delete(id: string): void {
    this.get(id);
    this.db.run('DELETE FROM policies WHERE id = ?', [id]);
  }
}
