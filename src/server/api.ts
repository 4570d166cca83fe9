import { Readable } from 'node:stream';
import { z } from 'zod';
import { listGuestFiles, listGuestPartitions, openGuestFile, TOOL_VERSION } from '../engine/index.js';
import { CofferError } from '../shared/index.js';
import { createToken, createUser, login, LoginThrottle, ROLES, type Role } from './auth.js';
import { audit, decodeCursor, encodeCursor, type Db } from './catalog.js';
import type { ServerConfig } from './config.js';
import { Pagination, type Routes } from './http-kit.js';
import { checkRestoreTarget, jobFromRow, type JobEvent, type JobRunner } from './jobs.js';
import { checkPolicyRepository, PolicySpecSchema, resolvePolicyVms, retentionStatus, type Policy } from './policy.js';
import type { PolicyStore } from './policy-store.js';
import type { RepositoryManager } from './repositories.js';
import type { Scheduler } from './scheduler.js';
import { vmStatuses } from './vm-status.js';

export interface ApiContext {
  db: Db;
  config: ServerConfig;
  repos: RepositoryManager;
  jobs: JobRunner;
  policies: PolicyStore;
  scheduler: Scheduler;
  startedAt: Date;
}

const IdParam = z.strictObject({ id: z.string().min(1).max(100) });
const JobIdParam = z.strictObject({ id: z.coerce.number().int().positive() });
const role = z.enum(ROLES);

function page<T>(rows: T[], limit: number, key: (t: T) => (string | number)[]): { items: T[]; nextCursor: string | null } {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, nextCursor: more ? encodeCursor(key(items[items.length - 1]!)) : null };
}

const StartJob = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('backup'),
    /** a policy id or name: backs up each of its VMs (or only `vm`) */
    policy: z.string().min(1).max(100),
    vm: z.string().min(1).max(512).optional(),
  }),
  z.strictObject({
    kind: z.literal('restore'),
    repository: z.string().min(1).max(64),
    pointId: z.string().min(1).max(64),
    disk: z.number().int().min(0).max(255),
    /** a path below a configured restore directory (relative paths are taken below the first one) */
    target: z.string().min(1).max(4096),
    force: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('verify'),
    repository: z.string().min(1).max(64),
    readDataPercent: z.number().min(0).max(100).default(0),
  }),
  z.strictObject({
    /** garbage collection (engine prune): one at a time per repository */
    kind: z.literal('prune'),
    repository: z.string().min(1).max(64),
  }),
]);

export function registerApi(routes: Routes, ctx: ApiContext): void {
  const { db, config, repos, jobs, policies, scheduler } = ctx;
  const vcenters = scheduler.vcenters;
  const inventory = () => vcenters.inventory();
  const policyView = (p: Policy) => ({
    ...p,
    retentionStatus: retentionStatus(p),
    nextRuns: scheduler.nextRuns(p.id),
    resolvedVms: resolvePolicyVms(p, inventory(), vcenters.errors()),
  });
  const throttle = new LoginThrottle(config.http.loginMaxFailures, 15 * 60_000);
  const findPolicy = (ref: string) => policies.list().find((p) => p.id === ref || p.name === ref) ?? policies.get(ref);

  routes.add({
    method: 'GET', url: '/api/health', summary: 'Liveness and version', tag: 'server', permission: null,
    handler: () => ({ status: 'ok', version: TOOL_VERSION, uptimeSeconds: Math.round((Date.now() - ctx.startedAt.getTime()) / 1000) }),
  });

  routes.add({
    method: 'POST', url: '/api/v1/auth/login', summary: 'Log in with a user name and password (returns a session token)', tag: 'auth', permission: null,
    body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) }),
    handler: async ({ body, remote, audit: a }) => {
      a({ username: body.username });
      const t = await login(db, body.username, body.password, config.http.sessionHours, remote, throttle);
      return { token: t.token, expiresAt: t.expiresAt, role: t.role, username: t.username };
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/me', summary: 'Who am I', tag: 'auth', permission: 'read',
    handler: ({ principal }) => ({ actor: principal!.actor, role: principal!.role }),
  });

  // ---- restore points

  routes.add({
    method: 'GET', url: '/api/v1/restore-points', summary: 'List restore points (newest first)', tag: 'restore-points', permission: 'read',
    query: Pagination.extend({ vm: z.string().max(512).optional(), repository: z.string().max(64).optional() }),
    handler: ({ query }) => {
      const c = decodeCursor(query.cursor, 3);
      const where: string[] = [];
      const args: unknown[] = [];
      if (query.vm) where.push('vm = ?') && args.push(query.vm);
      if (query.repository) where.push('repository = ?') && args.push(query.repository);
      if (c) where.push('(time, repository, id) < (?, ?, ?)') && args.push(...c);
      const rows = db
        .prepare(`SELECT * FROM restore_points ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, repository DESC, id DESC LIMIT ?`)
        .all(...args, query.limit + 1) as Record<string, unknown>[];
      const items = rows.map((r) => ({
        id: r.id,
        repository: r.repository,
        vm: r.vm,
        time: r.time,
        endTime: r.end_time,
        mode: r.mode,
        parent: r.parent,
        tags: JSON.parse(r.tags as string),
        disks: JSON.parse(r.disks as string),
        bytesRead: r.bytes_read,
        bytesStored: r.bytes_stored,
        verification: r.verified ? JSON.parse(r.verified as string) : null,
      }));
      return page(items, query.limit, (p) => [p.time as string, p.repository as string, p.id as string]);
    },
  });

  // ---- file browsing (file-level restore through the engine; guest names are untrusted and only ever JSON-encoded)

  /** The repository holding restore point `id` (ids are random: the same id in two repositories needs ?repository=). */
  const locatePoint = (id: string, repository: string | undefined): { repository: string; pointId: string } => {
    const rows = (repository
      ? db.prepare('SELECT repository FROM restore_points WHERE id = ? AND repository = ?').all(id, repository)
      : db.prepare('SELECT repository FROM restore_points WHERE id = ?').all(id)) as { repository: string }[];
    if (rows.length === 0) throw new CofferError('NOT_FOUND', `no restore point ${id}${repository ? ` in repository ${repository}` : ''}`);
    if (rows.length > 1) throw new CofferError('AMBIGUOUS', `restore point ${id} is in several repositories (${rows.map((r) => r.repository).join(', ')}): add ?repository=`);
    return { repository: rows[0]!.repository, pointId: id };
  };
  const FilesParams = z.strictObject({ id: z.string().min(1).max(64), disk: z.coerce.number().int().min(0).max(255) });
  const FilesLocation = {
    repository: z.string().max(64).optional(),
    /** partition number as listed (0 = a disk without partition table), or an LVM2 logical volume "VG/LV"; default: the only one */
    partition: z.union([z.coerce.number().int().min(0).max(4096), z.string().max(260).regex(/^[^/]+\/[^/]+$/)]).optional(),
  };

  routes.add({
    method: 'GET', url: '/api/v1/restore-points/:id/disks/:disk/files', tag: 'restore-points', permission: 'read',
    summary: 'Browse files of a restore point disk: without partition and path its partitions; else a directory (paginated, sorted by name) or one entry',
    params: FilesParams,
    query: Pagination.extend({ ...FilesLocation, path: z.string().min(1).max(4096).optional() }),
    handler: async ({ params, query }) => {
      const { repository, pointId } = locatePoint(params.id, query.repository);
      const { repo, pool } = await repos.forBrowsing(repository);
      if (query.partition === undefined && query.path === undefined) {
        const t = await listGuestPartitions(repo, pool, { pointId, disk: params.disk });
        const items = t.partitions.map((p) => ({
          number: p.number, startBytes: p.startBytes, sizeBytes: p.sizeBytes, type: p.type, name: p.name ?? null,
          container: Boolean(p.container), problem: p.problem ?? null, filesystem: p.filesystem ?? null,
        }));
        return { kind: 'partitions', repository, pointId, disk: params.disk, scheme: t.scheme, sizeBytes: t.sizeBytes, items, nextCursor: null };
      }
      const c = decodeCursor(query.cursor, 1);
      const offset = c ? c[0] : 0;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new CofferError('USAGE', 'query.cursor: not a cursor this server issued');
      const r = await listGuestFiles(repo, pool, { pointId, disk: params.disk, partition: query.partition, path: query.path ?? '/', page: { offset, limit: query.limit } });
      const items = r.entries ?? [];
      const total = r.entriesTotal ?? 0;
      return {
        kind: r.entries ? 'directory' : 'entry',
        repository, pointId, disk: params.disk, partition: r.partition, filesystem: r.filesystem, path: r.path, warnings: r.warnings,
        entry: r.entry, total, items,
        nextCursor: r.entries && offset + items.length < total ? encodeCursor([offset + items.length]) : null,
      };
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/restore-points/:id/disks/:disk/files/content', tag: 'restore-points', permission: 'restore', audit: true,
    summary: 'Download one regular file of a restore point disk (audited)',
    params: FilesParams,
    query: z.strictObject({ ...FilesLocation, path: z.string().min(1).max(4096) }),
    response: "application/octet-stream: the file's bytes (holes as zeros), Content-Disposition: attachment with the file name",
    handler: async ({ params, query, req, reply, principal, remote, audit: a }) => {
      a({ pointId: params.id, disk: params.disk, partition: query.partition ?? null, path: query.path });
      const { repository, pointId } = locatePoint(params.id, query.repository);
      a({ repository });
      const { repo, pool } = await repos.forBrowsing(repository);
      const f = await openGuestFile(repo, pool, { pointId, disk: params.disk, partition: query.partition, path: query.path });
      const content = f.content();
      // the first piece is read before any header is sent: a file unreadable from the start gets a coded error answer
      let first: IteratorResult<Buffer, void> | undefined;
      try {
        first = await content.next();
      } catch (e) {
        await f.close();
        throw e;
      }
      // from here on this request is audited when the stream ends (complete or not), not by the onResponse hook
      req.auditDone = true;
      let bytes = 0;
      let complete = false;
      let recorded = false;
      const record = (err: unknown) => {
        if (recorded) return;
        recorded = true;
        const code = err ? ((err as { code?: unknown }).code ?? 'INTERNAL') : undefined;
        audit(db, {
          actor: principal!.actor, action: `GET ${req.routeOptions.url}`, target: req.url.split('?')[0]!, remote, status: 200,
          details: { ...req.auditDetails, partition: f.partition, size: f.entry.size, bytes, complete: complete && !err, ...(code ? { error: String(code) } : {}) },
        });
      };
      const body = new Readable({
        read() {
          const next = first ? Promise.resolve(first) : content.next();
          first = undefined;
          next.then(
            (r) => {
              if (r.done) {
                complete = true;
                this.push(null);
              } else {
                bytes += r.value.length;
                this.push(r.value);
              }
            },
            (e: unknown) => this.destroy(e as Error),
          );
        },
        destroy(err, cb) {
          void (async () => {
            await content.return(undefined).catch(() => undefined);
            await f.close().catch(() => undefined);
            record(err ?? (complete ? undefined : { code: 'CANCELLED' }));
          })().finally(() => cb(err));
        },
      });
      return reply
        .code(200)
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(f.entry.size))
        .header('content-disposition', contentDisposition(f.entry.name))
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-store')
        .header('content-security-policy', "default-src 'none'; sandbox")
        .send(body);
    },
  });

  // ---- VMs, repositories, dashboard

  routes.add({
    method: 'GET', url: '/api/v1/vms', summary: 'VMs with protection status, last result and RPO compliance', tag: 'vms', permission: 'read',
    query: Pagination,
    handler: async ({ query }) => {
      await vcenters.refresh();
      const all = vmStatuses(db, policies.list(), inventory());
      const c = decodeCursor(query.cursor, 1);
      const rest = c ? all.filter((v) => v.name > (c[0] as string)) : all;
      return page(rest.slice(0, query.limit + 1), query.limit, (v) => [v.name]);
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/repositories', summary: 'Configured repositories with storage used and dedup ratio', tag: 'repositories', permission: 'read',
    handler: () => ({ items: repos.stats(), nextCursor: null }),
  });

  routes.add({
    method: 'POST', url: '/api/v1/repositories/:id/refresh', summary: 'Re-read restore points and statistics of a repository', tag: 'repositories', permission: 'operate',
    params: IdParam,
    handler: async ({ params }) => {
      repos.config(params.id);
      await repos.sync(params.id);
      return repos.stats().find((r) => r.name === params.id);
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/dashboard', summary: 'Summary for the console: VM counts, storage, a 14-day trend', tag: 'vms', permission: 'read',
    handler: () => {
      const vms = vmStatuses(db, policies.list(), inventory());
      const since = new Date(Date.now() - 13 * 86400_000).toISOString().slice(0, 10);
      const trend = db
        .prepare(`SELECT substr(end_time, 1, 10) AS day, COUNT(*) AS points, SUM(bytes_stored) AS bytesStored, SUM(bytes_read) AS bytesRead FROM restore_points WHERE substr(end_time, 1, 10) >= ? GROUP BY day ORDER BY day`)
        .all(since);
      const failures = db.prepare(`SELECT substr(finished_at, 1, 10) AS day, COUNT(*) AS failed FROM jobs WHERE status = 'failed' AND substr(finished_at, 1, 10) >= ? GROUP BY day`).all(since);
      return {
        vms: { total: vms.length, protected: vms.filter((v) => v.protected).length, compliant: vms.filter((v) => v.rpoCompliant === true).length, breached: vms.filter((v) => v.rpoCompliant === false).length },
        repositories: repos.stats(),
        trend,
        failures,
        jobs: db.prepare("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").all(),
      };
    },
  });

  // ---- policies

  routes.add({
    method: 'GET', url: '/api/v1/policies', summary: 'List policies', tag: 'policies', permission: 'read',
    query: Pagination,
    handler: async ({ query }) => {
      await vcenters.refresh();
      const c = decodeCursor(query.cursor, 1);
      const all = policies.list().filter((p) => !c || p.name > (c[0] as string));
      return page(all.slice(0, query.limit + 1).map(policyView), query.limit, (p) => [p.name]);
    },
  });
  routes.add({
    method: 'GET', url: '/api/v1/policies/:id', summary: 'Get a policy', tag: 'policies', permission: 'read', params: IdParam,
    handler: async ({ params }) => {
      const p = findPolicy(params.id);
      await vcenters.refresh();
      return policyView(p);
    },
  });
  routes.add({
    method: 'POST', url: '/api/v1/policies', summary: 'Create a policy', tag: 'policies', permission: 'policies', status: 201,
    body: PolicySpecSchema,
    handler: async ({ body, audit: a }) => {
      checkPolicyRepository(body, repos.names(), vcenters.names);
      await vcenters.refresh();
      const p = policies.create(body);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return policyView(p);
    },
  });
  routes.add({
    method: 'PUT', url: '/api/v1/policies/:id', summary: 'Replace a policy', tag: 'policies', permission: 'policies',
    params: IdParam, body: PolicySpecSchema,
    handler: async ({ params, body, audit: a }) => {
      checkPolicyRepository(body, repos.names(), vcenters.names);
      await vcenters.refresh();
      const p = policies.update(findPolicy(params.id).id, body);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return policyView(p);
    },
  });
  routes.add({
    method: 'DELETE', url: '/api/v1/policies/:id', summary: 'Delete a policy', tag: 'policies', permission: 'policies', params: IdParam,
    handler: ({ params, audit: a }) => {
      const p = findPolicy(params.id);
      policies.delete(p.id);
      a({ policy: p.id, name: p.name });
      scheduler.reload();
      return { deleted: p.id };
    },
  });

  // ---- jobs

  routes.add({
    method: 'POST', url: '/api/v1/jobs', summary: 'Start a backup, restore, verify or prune job', tag: 'jobs', permission: 'restore', status: 202,
    body: StartJob,
    handler: async ({ body, principal, audit: a }) => {
      const by = principal!.actor;
      if (body.kind !== 'restore' && !['admin', 'operator'].includes(principal!.role)) {
        throw new CofferError('FORBIDDEN', `role ${principal!.role} may only start restore jobs`);
      }
      a({ kind: body.kind });
      if (body.kind === 'backup') {
        const p = findPolicy(body.policy);
        await vcenters.refresh();
        if (body.vm !== undefined && !resolvePolicyVms(p, inventory(), vcenters.errors()).vms.some((v) => v.name === body.vm)) {
          throw new CofferError('USAGE', `invalid request: body.vm: policy ${p.name} does not cover VM ${JSON.stringify(body.vm)}`);
        }
        const ids = scheduler.enqueueBackups(p, 'manual', by, body.vm);
        if (ids.length === 0) throw new CofferError('USAGE', `invalid request: body.policy: policy ${p.name} covers no VM of the inventory`);
        a({ policy: p.id, jobs: ids, vm: body.vm });
        return { items: ids.map((id) => jobs.get(id)) };
      }
      repos.config(body.repository);
      if (body.kind === 'restore') {
        const target = checkRestoreTarget(body.target, config.restoreDirs!);
        const point = db.prepare('SELECT vm FROM restore_points WHERE repository = ? AND id = ?').get(body.repository, body.pointId) as { vm: string } | undefined;
        if (!point) throw new CofferError('NOT_FOUND', `no restore point ${body.pointId} in repository ${body.repository}`);
        const job = jobs.enqueue({ kind: 'restore', repository: body.repository, vm: point.vm, params: { pointId: body.pointId, disk: body.disk, target, force: body.force }, requestedBy: by });
        a({ job: job.id, pointId: body.pointId, disk: body.disk, target, vm: point.vm });
        return { items: [job] };
      }
      if (body.kind === 'prune') {
        if (jobs.hasPendingPrune(body.repository)) throw new CofferError('CONFLICT', `a prune of repository ${body.repository} is already queued or running`);
        const job = jobs.enqueue({ kind: 'prune', repository: body.repository, params: {}, requestedBy: by });
        a({ job: job.id });
        return { items: [job] };
      }
      const job = jobs.enqueue({ kind: 'verify', repository: body.repository, params: { readDataPercent: body.readDataPercent }, requestedBy: by });
      a({ job: job.id });
      return { items: [job] };
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/jobs', summary: 'List jobs (newest first)', tag: 'jobs', permission: 'read',
    query: Pagination.extend({
      status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
      kind: z.enum(['backup', 'restore', 'verify', 'prune']).optional(),
      vm: z.string().max(512).optional(),
    }),
    handler: ({ query }) => {
      const c = decodeCursor(query.cursor, 1);
      const where: string[] = [];
      const args: unknown[] = [];
      for (const k of ['status', 'kind', 'vm'] as const) if (query[k]) where.push(`${k} = ?`) && args.push(query[k]);
      if (c) where.push('id < ?') && args.push(c[0]);
      const rows = db.prepare(`SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`).all(...args, query.limit + 1) as never[];
      return page(rows.map(jobFromRow), query.limit, (j) => [j.id]);
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/jobs/:id', summary: 'A job with its log', tag: 'jobs', permission: 'read', params: JobIdParam,
    handler: ({ params }) => {
      const job = jobs.get(params.id);
      if (!job) throw new CofferError('NOT_FOUND', `no job ${params.id}`);
      return { ...job, logs: jobs.logs(params.id) };
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/jobs/:id/events', summary: 'Live job log, progress and status (Server-Sent Events)', tag: 'jobs', permission: 'read', params: JobIdParam,
    response: 'text/event-stream: events "log", "progress", "status"; the stream ends when the job has finished',
    handler: ({ params, req, reply }) => {
      const job = jobs.get(params.id);
      if (!job) throw new CofferError('NOT_FOUND', `no job ${params.id}`);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = (event: string, data: unknown) => raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      const terminal = (s: string) => s === 'succeeded' || s === 'failed' || s === 'cancelled';
      let lastSeq = 0;
      for (const l of jobs.logs(params.id)) {
        send('log', l);
        lastSeq = l.seq;
      }
      const now = jobs.get(params.id)!;
      if (now.progress) send('progress', now.progress);
      send('status', { status: now.status, error: now.error });
      if (terminal(now.status)) return void raw.end();
      const onEvent = (e: JobEvent) => {
        if (e.job !== params.id) return;
        if (e.type === 'log') {
          const seq = (e.data as { seq: number }).seq;
          if (seq <= lastSeq) return;
          lastSeq = seq;
        }
        send(e.type, e.data);
        if (e.type === 'status' && terminal((e.data as { status: string }).status)) close();
      };
      const ping = setInterval(() => raw.write(': ping\n\n'), 15_000);
      const close = () => {
        clearInterval(ping);
        jobs.off('event', onEvent);
        raw.end();
      };
      jobs.on('event', onEvent);
      req.raw.on('close', close);
    },
  });

  routes.add({
    method: 'POST', url: '/api/v1/jobs/:id/cancel', summary: 'Cancel a queued or running job', tag: 'jobs', permission: 'operate', params: JobIdParam,
    handler: ({ params, principal, audit: a }) => {
      a({ job: params.id });
      return jobs.cancel(params.id, principal!.actor);
    },
  });

  // ---- administration: audit, users, tokens

  routes.add({
    method: 'GET', url: '/api/v1/audit', summary: 'The audit log (newest first)', tag: 'admin', permission: 'admin',
    query: Pagination.extend({ actor: z.string().max(200).optional(), action: z.string().max(200).optional() }),
    handler: ({ query }) => {
      const c = decodeCursor(query.cursor, 1);
      const where: string[] = [];
      const args: unknown[] = [];
      if (query.actor) where.push('actor = ?') && args.push(query.actor);
      if (query.action) where.push('action = ?') && args.push(query.action);
      if (c) where.push('id < ?') && args.push(c[0]);
      const rows = db.prepare(`SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`).all(...args, query.limit + 1) as Record<string, unknown>[];
      return page(rows.map((r) => ({ ...r, details: JSON.parse(r.details as string) as unknown })), query.limit, (r) => [(r as unknown as { id: number }).id]);
    },
  });

  routes.add({
    method: 'GET', url: '/api/v1/users', summary: 'List users', tag: 'admin', permission: 'admin',
    handler: () => ({ items: db.prepare('SELECT username, role, created_at AS createdAt FROM users ORDER BY username').all(), nextCursor: null }),
  });
  routes.add({
    method: 'POST', url: '/api/v1/users', summary: 'Create a user', tag: 'admin', permission: 'admin', status: 201,
    body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(8).max(1024), role }),
    handler: async ({ body, principal, remote, audit: a }) => {
      a({ username: body.username, role: body.role });
      await createUser(db, body.username, body.password, body.role, principal!.actor, remote);
      return { username: body.username, role: body.role };
    },
  });
  routes.add({
    method: 'DELETE', url: '/api/v1/users/:id', summary: 'Delete a user (and end their sessions)', tag: 'admin', permission: 'admin', params: IdParam,
    handler: ({ params, audit: a }) => {
      a({ username: params.id });
      if (db.prepare('DELETE FROM users WHERE username = ?').run(params.id).changes === 0) throw new CofferError('NOT_FOUND', `no user ${params.id}`);
      db.prepare('DELETE FROM tokens WHERE username = ?').run(params.id);
      return { deleted: params.id };
    },
  });
  routes.add({
    method: 'GET', url: '/api/v1/tokens', summary: 'List API tokens (never the secrets)', tag: 'admin', permission: 'admin',
    handler: () => ({
      items: db.prepare("SELECT id, name, role, created_at AS createdAt, created_by AS createdBy, expires_at AS expiresAt, last_used_at AS lastUsedAt FROM tokens WHERE kind = 'api' ORDER BY created_at").all(),
      nextCursor: null,
    }),
  });
  routes.add({
    method: 'POST', url: '/api/v1/tokens', summary: 'Create an API token (the secret is shown once)', tag: 'admin', permission: 'admin', status: 201,
    body: z.strictObject({ name: z.string().min(1).max(100), role, expiresInDays: z.number().positive().max(3650).optional() }),
    handler: ({ body, principal, remote, audit: a }) => {
      const t = createToken(db, { role: body.role as Role, name: body.name, createdBy: principal!.actor, remote, ...(body.expiresInDays ? { expiresAt: new Date(Date.now() + body.expiresInDays * 86400_000) } : {}) });
      a({ token: t.id, role: t.role });
      return t;
    },
  });
  routes.add({
    method: 'DELETE', url: '/api/v1/tokens/:id', summary: 'Revoke an API token', tag: 'admin', permission: 'admin', params: IdParam,
    handler: ({ params, audit: a }) => {
      a({ token: params.id });
      if (db.prepare("DELETE FROM tokens WHERE id = ? AND kind = 'api'").run(params.id).changes === 0) throw new CofferError('NOT_FOUND', `no token ${params.id}`);
      return { deleted: params.id };
    },
  });
}

/** A Content-Disposition for an untrusted guest file name: a plain-ASCII fallback and the exact name in RFC 5987 form. */
export function contentDisposition(name: string): string {
  const wellFormed = name.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD').replace(/[\x00-\x1f\x7f/\\]/g, '_').slice(0, 255);
  const ascii = wellFormed.replace(/[^\x20-\x7e]|["%;]/g, '_').replace(/^[.\s]+/, '').slice(0, 200) || 'download';
  const utf8 = encodeURIComponent(wellFormed).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}
