import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CofferError } from '../../shared/index.js';
import { authenticate, can, type Principal } from '../auth.js';
import { decodeCursor, TERMINAL_STATUSES, type Catalog, type Job, type JobStatus } from '../catalog/index.js';
import { JOB_STATES, jobState, jobView } from '../jobs/job-state.js';
import type { JobEvent, JobQueue } from '../jobs/queue.js';
import { checkRestoreTarget } from '../jobs/restore-target.js';
import { pathLike } from '../validation.js';
import { BootCheckSpecSchema, resolvePolicyVms } from '../policy.js';
import { findPolicy, type ApiContext } from './context.js';
import { JobIdParam, page, Pagination, type Routes } from './kit.js';

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
    target: pathLike(4096),
    force: z.boolean().default(false),
    /** the image format: raw, qcow2, vmdk (streamOptimized) or vhdx (dynamic), as `coffer restore --format` */
    format: z.enum(['raw', 'qcow2', 'vmdk', 'vhdx']).default('raw'),
  }),
  z.strictObject({
    /**
     * a whole VM into a configured vCenter (the repository may be a copy repository, the vCenter any configured one):
     * a new VM named `name`, or over the existing powered-off VM of that name (`force`; `quick`: only what differs)
     */
    kind: z.literal('restore-vm'),
    repository: z.string().min(1).max(64),
    pointId: z.string().regex(/^[0-9a-f]{32}$/),
    /** a vCenter of the server configuration */
    vcenter: z.string().min(1).max(200),
    /** the VM's name (a plain name; the location is folder/pool/host) */
    name: z
      .string()
      .min(1)
      .max(80)
      .regex(/^[^/*?[\]\\]+$/, 'a plain VM name (no / \\ * ? [ ])'),
    datastore: z.string().min(1).max(255),
    /** inventory path of the VM folder (default: the datacenter's VM folder) */
    folder: z.string().min(1).max(1024).optional(),
    /** datacenter name or path (needed when the datastore name exists in several datacenters) */
    datacenter: z.string().min(1).max(1024).optional(),
    /** storage policy (PBM profile name) for every disk of a new VM (default: each disk's stored policy) */
    storagePolicy: z.string().min(1).max(255).optional(),
    /** inventory path of the resource pool (default: the stored one, else the first cluster's) */
    pool: z.string().min(1).max(1024).optional(),
    host: z.string().min(1).max(255).optional(),
    /** restore over the existing VM of that name (powered off, no snapshots) */
    force: z.boolean().default(false),
    /** with force: write only what differs from the point (hot-add from a proxy VM; CBT or comparison) */
    quick: z.boolean().default(false),
    /** quick: the VM the server runs in (default: found by its SMBIOS UUID) */
    proxyVm: z.string().min(1).max(255).optional(),
    powerOn: z.boolean().default(false),
    /** stored network name -> target network name */
    networkMap: z.record(z.string().min(1).max(255), z.string().min(1).max(255)).optional(),
    nicsDisconnected: z.boolean().default(false),
    keepMac: z.boolean().default(false),
    keepUuid: z.boolean().default(false),
    /** validate everything against vCenter and return the plan in the job's result; create nothing */
    dryRun: z.boolean().default(false),
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
  z.strictObject({
    /** a recoverability check (fsck over NBD) of one point, or its file-level ransomware indicators (`files`) */
    kind: z.literal('check'),
    repository: z.string().min(1).max(64),
    pointId: z.string().regex(/^[0-9a-f]{32}$/),
    files: z.boolean().default(false),
    /**
     * also boot the point in QEMU (`coffer check --boot`): success = `marker` on the serial console, or the guest
     * agent's answer (`agent`); optionally a boot script from the server's bootScriptsDir, forwarded guest ports
     */
    boot: BootCheckSpecSchema.optional(),
  }),
]);

type JobsContext = Pick<ApiContext, 'catalog' | 'config' | 'repos' | 'queue' | 'runner' | 'scheduler' | 'vcenters'>;

/** Tag `jobs`: start (backup, restore, verify, prune), list, one with its log, live events, cancel. */
export function registerJobRoutes(routes: Routes, ctx: JobsContext): void {
  const { catalog, queue, runner } = ctx;
  // open event streams: at shutdown each is ended (its last event flushed) before connections are force-closed
  const streams = new Set<() => Promise<void>>();
  routes.beforeClose(async () => {
    await Promise.all([...streams].map((end) => end()));
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/jobs',
    summary:
      'Start a backup, restore (one disk to a file), restore-vm (a whole VM to vCenter), verify, prune or ' +
      'check job',
    tag: 'jobs',
    permission: 'restore',
    status: 202,
    body: StartJob,
    handler: async ({ body, principal, audit: a }) => ({ items: await startJob(ctx, body, principal!, a) }),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/jobs',
    summary: 'List jobs (newest first); `retrying` is a job that failed and waits for its next attempt',
    tag: 'jobs',
    permission: 'read',
    query: Pagination.extend({
      status: z.enum(JOB_STATES).optional(),
      kind: z.enum(['backup', 'restore', 'restore-vm', 'verify', 'prune', 'check']).optional(),
      vm: z.string().max(512).optional(),
    }),
    handler: ({ query }) => {
      const c = decodeCursor(query.cursor, 1);
      // `queued` and `retrying` are both the catalog's `queued` status: told apart by jobState
      const waiting = query.status === 'retrying' || query.status === 'queued';
      const rows = catalog.jobs.list({
        status: waiting ? 'queued' : (query.status as JobStatus | undefined),
        kind: query.kind,
        vm: query.vm,
        ...(c ? { beforeId: c[0] as number } : {}),
        limit: waiting ? 10_000 : query.limit + 1,
      });
      const items = rows.map(jobView).filter((j) => !waiting || j.status === query.status);
      return page(items.slice(0, query.limit + 1), query.limit, (j) => [j.id]);
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/jobs/:id',
    summary: 'A job with its log',
    tag: 'jobs',
    permission: 'read',
    params: JobIdParam,
    handler: ({ params }) => {
      const job = queue.get(params.id);
      if (!job) throw new CofferError('NOT_FOUND', `no job ${params.id}`);
      return { ...jobView(job), logs: queue.logs(params.id) };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/jobs/:id/events',
    summary: 'Live job log, progress and status (Server-Sent Events)',
    tag: 'jobs',
    permission: 'read',
    params: JobIdParam,
    response: 'text/event-stream: events "log", "progress", "status"; the stream ends when the job has finished',
    handler: ({ params, req, reply }) =>
      streamJobEvents(queue, params.id, req, reply, streams, () => stillAuthorised(catalog, req.headers.authorization)),
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/jobs/:id/cancel',
    summary: 'Cancel a queued or running job',
    tag: 'jobs',
    permission: 'operate',
    params: JobIdParam,
    handler: ({ params, principal, audit: a }) => {
      a({ job: params.id });
      return jobView(runner.cancel(params.id, principal!.actor));
    },
  });
}

/** Queues the jobs a POST /api/v1/jobs asks for (a backup of a policy may be several: one per VM). */
async function startJob(
  ctx: JobsContext,
  body: z.infer<typeof StartJob>,
  principal: Principal,
  a: (d: Record<string, unknown>) => void,
): Promise<Job[]> {
  const { catalog, config, repos, queue, scheduler, vcenters } = ctx;
  const by = principal.actor;
  if (body.kind !== 'restore' && body.kind !== 'restore-vm' && !['admin', 'operator'].includes(principal.role)) {
    throw new CofferError('FORBIDDEN', `role ${principal.role} may only start restore jobs`);
  }
  a({ kind: body.kind });
  if (body.kind === 'backup') {
    const p = findPolicy(catalog, body.policy);
    await vcenters.refresh();
    if (
      body.vm !== undefined &&
      !resolvePolicyVms(p, vcenters.inventory(), vcenters.errors()).vms.some((v) => v.name === body.vm)
    ) {
      throw new CofferError(
        'USAGE',
        `invalid request: body.vm: policy ${p.name} does not cover VM ${JSON.stringify(body.vm)}`,
      );
    }
    const ids = scheduler.enqueueBackups(p, 'manual', by, body.vm);
    if (ids.length === 0)
      throw new CofferError('USAGE', `invalid request: body.policy: policy ${p.name} covers no VM of the inventory`);
    a({ policy: p.id, jobs: ids, vm: body.vm });
    return ids.map((id) => queue.get(id)!);
  }
  repos.config(body.repository);
  if (body.kind === 'restore') {
    const target = checkRestoreTarget(body.target, config.restoreDirs!);
    const vm = catalog.restorePoints.vmOf(body.repository, body.pointId);
    if (vm === undefined)
      throw new CofferError('NOT_FOUND', `no restore point ${body.pointId} in repository ${body.repository}`);
    const job = queue.enqueue({
      kind: 'restore',
      repository: body.repository,
      vm,
      params: { pointId: body.pointId, disk: body.disk, target, force: body.force, format: body.format },
      requestedBy: by,
    });
    a({ job: job.id, pointId: body.pointId, disk: body.disk, target, vm, format: body.format });
    return [job];
  }
  if (body.kind === 'restore-vm') {
    const vm = catalog.restorePoints.vmOf(body.repository, body.pointId);
    if (vm === undefined)
      throw new CofferError('NOT_FOUND', `no restore point ${body.pointId} in repository ${body.repository}`);
    if (!config.vcenters.some((v) => v.name === body.vcenter))
      throw new CofferError(
        'USAGE',
        `invalid request: body.vcenter: unknown vCenter ${JSON.stringify(body.vcenter)} ` +
          `(configured: ${config.vcenters.map((v) => v.name).join(', ') || 'none'})`,
      );
    if (body.quick && !body.force)
      throw new CofferError('USAGE', 'invalid request: body.quick: a quick rollback restores over the VM: set force');
    if (body.proxyVm !== undefined && !body.quick)
      throw new CofferError('USAGE', 'invalid request: body.proxyVm: applies to a quick rollback only');
    if (body.storagePolicy !== undefined && body.force)
      throw new CofferError('USAGE', 'invalid request: body.storagePolicy: applies to a restore as a new VM');
    if (body.quick && body.dryRun)
      throw new CofferError('USAGE', 'invalid request: body.dryRun: a quick rollback has no dry run');
    const { kind: _k, repository, ...params } = body;
    const job = queue.enqueue({ kind: 'restore-vm', repository, vm, params, requestedBy: by });
    a({
      job: job.id,
      pointId: body.pointId,
      vm,
      vcenter: body.vcenter,
      name: body.name,
      datastore: body.datastore,
      ...(body.force ? { force: true } : {}),
      ...(body.quick ? { quick: true } : {}),
      ...(body.dryRun ? { dryRun: true } : {}),
    });
    return [job];
  }
  if (body.kind === 'prune') {
    if (queue.hasPendingPrune(body.repository))
      throw new CofferError('CONFLICT', `a prune of repository ${body.repository} is already queued or running`);
    const job = queue.enqueue({ kind: 'prune', repository: body.repository, params: {}, requestedBy: by });
    a({ job: job.id });
    return [job];
  }
  if (body.kind === 'check') {
    if (body.boot?.script !== undefined && !config.bootScriptsDir)
      throw new CofferError(
        'USAGE',
        `boot script ${body.boot.script}: this server has no bootScriptsDir in its config, so it runs no boot scripts`,
      );
    const vm = catalog.restorePoints.vmOf(body.repository, body.pointId);
    if (vm === undefined)
      throw new CofferError('NOT_FOUND', `no restore point ${body.pointId} in repository ${body.repository}`);
    const job = queue.enqueue({
      kind: 'check',
      repository: body.repository,
      vm,
      params: { pointId: body.pointId, files: body.files, ...(body.boot ? { boot: body.boot } : {}) },
      requestedBy: by,
    });
    a({ job: job.id, pointId: body.pointId, files: body.files, boot: body.boot !== undefined });
    return [job];
  }
  const job = queue.enqueue({
    kind: 'verify',
    repository: body.repository,
    params: { readDataPercent: body.readDataPercent },
    requestedBy: by,
  });
  a({ job: job.id });
  return [job];
}

/** Server-Sent Events of one job: its log so far, its progress and status, then live events until it ends. */
/** The request's token is still valid (not revoked, not expired, its user not deleted) and may still read. */
function stillAuthorised(catalog: Pick<Catalog, 'tokens' | 'users'>, header: string | undefined): boolean {
  try {
    return can(authenticate(catalog, header).role, 'read');
  } catch {
    return false;
  }
}

/** How often an open event stream checks that its token is still valid (revocation ends the stream). */
const STREAM_AUTH_CHECK_MS = 1000;

/**
 * Server-Sent Events of one job: its log so far, its progress and status, then live events until it ends. The
 * stream ends (after an "error" event) when its session or token is revoked, expires, or its user is deleted.
 */
function streamJobEvents(
  queue: JobQueue,
  id: number,
  req: FastifyRequest,
  reply: FastifyReply,
  open: Set<() => Promise<void>>,
  authorised: () => boolean,
): void {
  const job = queue.get(id);
  if (!job) throw new CofferError('NOT_FOUND', `no job ${id}`);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  const send = (event: string, data: unknown) => raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const terminal = (s: string) => TERMINAL_STATUSES.includes(s as JobStatus);
  let lastSeq = 0;
  for (const l of queue.logs(id)) {
    send('log', l);
    lastSeq = l.seq;
  }
  const now = queue.get(id)!;
  if (now.progress) send('progress', now.progress);
  send('status', { status: jobState(now), error: now.error });
  if (terminal(now.status)) return void raw.end();
  const onEvent = (e: JobEvent) => {
    if (e.job !== id) return;
    if (e.type === 'log') {
      const seq = (e.data as { seq: number }).seq;
      if (seq <= lastSeq) return;
      lastSeq = seq;
    }
    send(e.type, e.data);
    if (e.type === 'status' && terminal((e.data as { status: string }).status)) close();
  };
  const ping = setInterval(() => raw.write(': ping\n\n'), 15_000);
  const authCheck = setInterval(() => {
    if (authorised()) return;
    send('error', { code: 'UNAUTHENTICATED', message: 'the session or token of this stream was revoked' });
    close();
  }, STREAM_AUTH_CHECK_MS);
  const close = () => {
    clearInterval(ping);
    clearInterval(authCheck);
    queue.off('event', onEvent);
    raw.end();
  };
  /** ends the stream and resolves once its bytes are flushed (or the client has gone; at most 2 s) */
  const end = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if (raw.writableFinished || raw.destroyed) return done();
      raw.once('finish', done);
      raw.once('close', done);
      close();
    });
  open.add(end);
  raw.once('finish', () => open.delete(end));
  raw.once('close', () => open.delete(end));
  queue.on('event', onEvent);
  req.raw.on('close', close);
}
