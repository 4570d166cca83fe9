import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CofferError } from '../../shared/index.js';
import type { ApiContext } from './context.js';
import { JobIdParam, type Routes } from './kit.js';

const proxyName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-"');
const names = z.array(z.string().min(1).max(256)).max(1000);
const Capabilities = z.strictObject({
  kinds: z.array(z.enum(['backup', 'restore', 'restore-vm', 'verify', 'prune', 'check'])).max(6),
  transports: z.array(z.enum(['disk', 'http', 'nbd', 'hotadd'])).max(4),
  repositories: names.nullable(),
  vcenters: names.nullable(),
  clusters: names.nullable(),
  datastores: names.nullable(),
});
const Attempt = z.number().int().min(1).max(1000);
const ProxyEvent = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('log'), level: z.enum(['info', 'warn']), message: z.string().max(8192) }),
  z.strictObject({
    type: z.literal('progress'),
    unit: z.enum(['bytes', 'items']),
    done: z.number().min(0),
    total: z.number().min(0),
    phase: z.string().max(200).optional(),
  }),
]);
const Outcome = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), result: z.unknown() }),
  z.strictObject({
    ok: z.literal(false),
    error: z.strictObject({ code: z.string().max(64), message: z.string().max(8192) }),
  }),
]);

/** secrets (repository passwords, vCenter credentials) travel only over TLS or the loopback interface */
function secureChannel(req: FastifyRequest): boolean {
  if (req.protocol === 'https') return true;
  const a = req.socket.remoteAddress ?? '';
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

type ProxiesContext = Pick<ApiContext, 'catalog' | 'placer' | 'remoteProxies'>;

/**
 * Tag `proxies` (docs/DESIGN.md §Proxies and placement): the `coffer proxy` protocol (proxy tokens only: register,
 * heartbeat, claim, events, finish) and, for people, the list of proxies with their state and load, drain and undrain.
 */
export function registerProxyRoutes(routes: Routes, ctx: ProxiesContext): void {
  const { catalog, placer, remoteProxies } = ctx;
  const token = (req: FastifyRequest) => req.proxyToken!.tokenId;

  routes.add({
    method: 'POST',
    url: '/api/v1/proxy/register',
    summary: 'A proxy registers (same Coffer version as the server only) and learns its lease and heartbeat periods',
    tag: 'proxies',
    permission: 'proxy',
    body: z.strictObject({
      name: proxyName,
      version: z.string().min(1).max(64),
      concurrency: z.number().int().min(1).max(256),
      capabilities: Capabilities,
      /** the proxy process (HOST:PID:RANDOM): a second process with the same token and name is refused (CONFLICT) */
      instance: z.string().min(1).max(300).optional(),
    }),
    handler: ({ body, req, remote }) => {
      const entry = {
        actor: req.proxyToken!.actor,
        action: 'proxy.register',
        target: `proxy:${body.name}`,
        remote,
        details: { version: body.version, concurrency: body.concurrency },
      };
      try {
        const p = remoteProxies.register(token(req), body);
        catalog.audit.append({ ...entry, status: 200 });
        return {
          name: p.name,
          drained: p.drained,
          leaseMs: remoteProxies.leaseMs,
          heartbeatMs: Math.max(100, Math.floor(remoteProxies.leaseMs / 3)),
        };
      } catch (e) {
        catalog.audit.append({ ...entry, status: 409 });
        throw e;
      }
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/proxy/heartbeat',
    summary: 'A proxy is alive; renews the leases of its running jobs (`lost`: jobs to stop)',
    tag: 'proxies',
    permission: 'proxy',
    body: z.strictObject({ name: proxyName, running: z.array(z.number().int().positive()).max(1024) }),
    handler: ({ body, req }) => remoteProxies.heartbeat(token(req), body.name, body.running),
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/proxy/claim',
    summary: 'A proxy asks for up to `free` jobs (placement); each comes with its repository and vCenter access',
    tag: 'proxies',
    permission: 'proxy',
    body: z.strictObject({ name: proxyName, free: z.number().int().min(0).max(256) }),
    handler: async ({ body, req }) => {
      if (!secureChannel(req))
        throw new CofferError(
          'PROXY_REFUSED',
          'jobs carry repository passwords: proxies claim them over HTTPS (or from 127.0.0.1) only',
        );
      return { jobs: await remoteProxies.claim(token(req), body.name, body.free) };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/proxy/jobs/:id/events',
    summary: 'Log lines and progress of a job a proxy runs',
    tag: 'proxies',
    permission: 'proxy',
    params: JobIdParam,
    body: z.strictObject({ name: proxyName, attempt: Attempt, events: z.array(ProxyEvent).max(1000) }),
    handler: ({ body, params, req }) => {
      remoteProxies.events(token(req), body.name, params.id, body.attempt, body.events);
      return { ok: true };
    },
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/proxy/jobs/:id/finish',
    summary: "The outcome of a proxy's attempt; the server then does its part (retention, catalog) and retries",
    tag: 'proxies',
    permission: 'proxy',
    params: JobIdParam,
    body: z.strictObject({ name: proxyName, attempt: Attempt, outcome: Outcome }),
    handler: async ({ body, params, req }) => {
      const job = await remoteProxies.finish(token(req), body.name, params.id, body.attempt, body.outcome);
      return { id: job.id, status: job.status };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/proxies',
    summary: 'The backup proxies: state, load, capabilities, version, last heartbeat',
    tag: 'proxies',
    permission: 'read',
    handler: () => ({ items: placer.proxies().map(({ tokenId: _t, ...p }) => p), nextCursor: null }),
  });

  for (const drained of [true, false]) {
    routes.add({
      method: 'POST',
      url: `/api/v1/proxies/:id/${drained ? 'drain' : 'undrain'}`,
      summary: drained
        ? 'Drain a proxy for maintenance: it takes no new job, its running jobs finish'
        : 'Undrain a proxy: it takes jobs again',
      tag: 'proxies',
      permission: 'operate',
      params: z.strictObject({ id: z.string().min(1).max(200) }),
      handler: ({ params, audit: a }) => {
        a({ proxy: params.id, drained });
        const p = catalog.proxies.setDrained(params.id, drained);
        if (!p) throw new CofferError('NOT_FOUND', `no proxy ${params.id}`);
        const view = placer.proxies().find((v) => v.owner === p.owner)!;
        const { tokenId: _t, ...rest } = view;
        return rest;
      },
    });
  }
}
