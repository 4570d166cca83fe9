export { runServer, parseListen, type ServerOptions } from './server.js';
export type { ServerDeps } from './deps.js';
export { createApiToken, addUser } from './admin.js';
export { ROLES, PERMISSIONS, type Role } from './auth.js';
