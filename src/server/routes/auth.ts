import { z } from 'zod';
import { login, LoginThrottle } from '../auth.js';
import type { ApiContext } from './context.js';
import type { Routes } from './kit.js';

/** Tag `auth`: log in (session tokens) and who-am-I. */
export function registerAuthRoutes(routes: Routes, { catalog, config }: Pick<ApiContext, 'catalog' | 'config'>): void {
  const throttle = new LoginThrottle(config.http.loginMaxFailures, 15 * 60_000);

  routes.add({
    method: 'POST',
    url: '/api/v1/auth/login',
    summary: 'Log in with a user name and password (returns a session token)',
    tag: 'auth',
    permission: null,
    body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) }),
    handler: async ({ body, remote, audit: a }) => {
      a({ username: body.username });
      const t = await login(catalog, body.username, body.password, config.http.sessionHours, remote, throttle);
      return { token: t.token, expiresAt: t.expiresAt, role: t.role, username: t.username };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/auth/logout',
    summary: 'Log out: revoke the session (or API token) this request authenticates with',
    tag: 'auth',
    permission: 'read',
    handler: ({ principal, audit: a }) => {
      a({ token: principal!.tokenId });
      catalog.tokens.revoke(principal!.tokenId);
      return { revoked: principal!.tokenId };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/me',
    summary: 'Who am I',
    tag: 'auth',
    permission: 'read',
    handler: ({ principal }) => ({ actor: principal!.actor, role: principal!.role }),
  });
}
