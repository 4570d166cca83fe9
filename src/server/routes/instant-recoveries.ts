import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { serveDisk, type ServedDisk } from '../../engine/index.js';
import { CofferError } from '../../shared/index.js';
import type { ApiContext } from './context.js';
import type { Routes } from './kit.js';

type IrContext = Pick<ApiContext, 'catalog' | 'config' | 'repos'>;

interface Session {
  id: string;
  repository: string;
  startedAt: string;
  startedBy: string;
  served: ServedDisk;
}

const view = (s: Session) => {
  const { close: _close, ...served } = s.served;
  return {
    ...served,
    id: s.id,
    pointId: s.served.id,
    repository: s.repository,
    startedAt: s.startedAt,
    startedBy: s.startedBy,
  };
};

/**
 * Tag `instant-recoveries`: one disk of a restore point served over NBD by the server (the engine's serveDisk, as
 * `coffer mount`), on the configured listen address and a free port, until stopped (DELETE) or the server stops.
 * Writable exports keep writes in a temporary overlay file, removed when stopped; the repository is never written.
 */
export function registerInstantRecoveryRoutes(routes: Routes, ctx: IrContext): void {
  const { catalog, config, repos } = ctx;
  const sessions = new Map<string, Session>();
  routes.beforeClose(async () => {
    await Promise.allSettled([...sessions.values()].map((s) => s.served.close()));
    sessions.clear();
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/instant-recoveries',
    summary: 'Instant recoveries being served (NBD exports of restore point disks)',
    tag: 'instant-recoveries',
    permission: 'read',
    handler: () => ({ items: [...sessions.values()].map(view) }),
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/instant-recoveries',
    summary: 'Start serving one disk of a restore point over NBD (instant recovery); answers with its nbd:// URI',
    tag: 'instant-recoveries',
    permission: 'restore',
    status: 201,
    body: z.strictObject({
      repository: z.string().min(1).max(64),
      pointId: z.string().regex(/^[0-9a-f]{32}$/),
      disk: z.number().int().min(0).max(255).default(0),
      /** accept writes into a temporary copy-on-write overlay (the repository is never written) */
      writable: z.boolean().default(false),
    }),
    handler: async ({ body, principal, audit: a }) => {
      a({ repository: body.repository, pointId: body.pointId, disk: body.disk, writable: body.writable });
      repos.config(body.repository);
      if (catalog.restorePoints.vmOf(body.repository, body.pointId) === undefined)
        throw new CofferError('NOT_FOUND', `no restore point ${body.pointId} in repository ${body.repository}`);
      if (sessions.size >= config.instantRecovery.max)
        throw new CofferError(
          'CONFLICT',
          `${sessions.size} instant recoveries are served already (instantRecovery.max); stop one first`,
        );
      const { repo, pool } = await repos.forBrowsing(body.repository);
      const id = randomUUID();
      const served = await serveDisk(repo, pool, {
        pointId: body.pointId,
        disk: body.disk,
        host: config.instantRecovery.listen,
        port: 0,
        exportName: `${body.pointId.slice(0, 12)}-disk${body.disk}`,
        writable: body.writable,
      });
      const s: Session = {
        id,
        repository: body.repository,
        startedAt: new Date().toISOString(),
        startedBy: principal!.actor,
        served,
      };
      sessions.set(id, s);
      a({ id, uri: served.uri });
      return view(s);
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/api/v1/instant-recoveries/:id',
    summary: 'Stop an instant recovery (its NBD export closes; a writable one loses its overlay)',
    tag: 'instant-recoveries',
    permission: 'restore',
    params: z.strictObject({ id: z.string().uuid() }),
    handler: async ({ params, audit: a }) => {
      const s = sessions.get(params.id);
      a({ id: params.id });
      if (!s) throw new CofferError('NOT_FOUND', `no instant recovery ${params.id}`);
      sessions.delete(params.id);
      await s.served.close();
      a({ pointId: s.served.id, uri: s.served.uri });
      return { ...view(s), stopped: true };
    },
  });
}
