import { CofferError } from '../shared/index.js';
import { createToken, createUser, isRole, isTokenRole, ROLES, type CreatedToken } from './auth.js';
import { openCatalog } from './catalog/index.js';

function role(r: string) {
  if (!isRole(r)) throw new CofferError('USAGE', `--role must be one of ${ROLES.join(', ')}, not ${JSON.stringify(r)}`);
  return r;
}

/** `coffer token create`: works on the catalog directly (also while the server runs: SQLite WAL). */
export function createApiToken(dataDir: string, r: string, name: string, catalogUrl?: string): CreatedToken {
  const catalog = openCatalog(dataDir, catalogUrl);
  try {
    if (!isTokenRole(r))
      throw new CofferError(
        'USAGE',
        `--role must be one of ${ROLES.join(', ')}, not ${JSON.stringify(r)} (a token may also have role proxy)`,
      );
    return createToken(catalog, { role: r, name, createdBy: 'cli:token-create' });
  } finally {
    catalog.close();
  }
}

/** `coffer user add`. */
export async function addUser(
  dataDir: string,
  username: string,
  password: string,
  r: string,
  catalogUrl?: string,
): Promise<void> {
  const catalog = openCatalog(dataDir, catalogUrl);
  try {
    await createUser(catalog, username, password, role(r), 'cli:user-add');
  } finally {
    catalog.close();
  }
}
