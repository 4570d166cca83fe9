export { runServer, parseListen, type ServerOptions } from './server.js';
export type { ServerDeps } from './deps.js';
export { createApiToken, addUser } from './admin.js';
export { backupCatalog, restoreCatalog } from './catalog-backup.js';
export { ROLES, PERMISSIONS, type Role } from './auth.js';
