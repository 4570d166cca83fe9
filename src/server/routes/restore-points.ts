import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  diffFiles,
  findFiles,
  listGuestFiles,
  listGuestPartitions,
  openGuestArchive,
  openGuestFile,
  type CodecPool,
  type GuestArchive,
  type GuestFile,
  type UseCaseContext,
} from '../../engine/index.js';
import { guestPath } from '../validation.js';
import { parseStoredConfig } from '../../vsphere/index.js';
import { CofferError } from '../../shared/index.js';
import type { Principal } from '../auth.js';
import { decodeCursor, encodeCursor, type Catalog } from '../catalog/index.js';
import type { ApiContext } from './context.js';
import { page, Pagination, type Routes } from './kit.js';

const FilesParams = z.strictObject({ id: z.string().min(1).max(64), disk: z.coerce.number().int().min(0).max(255) });
const FilesLocation = {
  repository: z.string().max(64).optional(),
  /** partition number as listed (0 = a disk without partition table); default: the only one */
  /**
   * partition number as listed (0 = a disk without partition table), or an LVM2 logical volume "VG/LV";
   * default: the only one
   */
  partition: z
    .union([
      z.coerce.number().int().min(0).max(4096),
      z
        .string()
        .max(260)
        .regex(/^[^/]+\/[^/]+$/),
    ])
    .optional(),
};
const BrowseQuery = Pagination.extend({ ...FilesLocation, path: guestPath(4096).optional() });

type PointsContext = Pick<ApiContext, 'catalog' | 'repos'>;

/**
 * Tag `restore-points`: the catalog's restore points, and file browsing in them (file-level restore through the
 * engine; guest names are untrusted and only ever JSON-encoded).
 */
export function registerRestorePointRoutes(routes: Routes, ctx: PointsContext): void {
  const { catalog, repos } = ctx;

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points',
    summary: 'List restore points (newest first)',
    tag: 'restore-points',
    permission: 'read',
    query: Pagination.extend({ vm: z.string().max(512).optional(), repository: z.string().max(64).optional() }),
    handler: ({ query }) => {
      const c = decodeCursor(query.cursor, 3) as [string, string, string] | undefined;
      const items = catalog.restorePoints.list({
        vm: query.vm,
        repository: query.repository,
        ...(c ? { before: c } : {}),
        limit: query.limit + 1,
      });
      return page(items, query.limit, (p) => [p.time, p.repository, p.id]);
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/vm-config',
    tag: 'restore-points',
    permission: 'read',
    summary:
      'The VM configuration stored in a restore point (what a restore-vm job recreates): NICs and their networks ' +
      '(the network map), disks with their datastores, placement at backup time; `vsphere` false for a disk backup',
    params: z.strictObject({ id: z.string().min(1).max(64) }),
    query: z.strictObject({ repository: z.string().max(64).optional() }),
    handler: async ({ params, query }) => {
      const { repository, pointId } = locatePoint(catalog, params.id, query.repository);
      const manifest = await (await repos.get(repository)).loadManifest(pointId);
      if (manifest.vmConfig === undefined)
        return { id: pointId, repository, vm: manifest.vm.name, vsphere: false, nics: [], disks: [] };
      const cfg = parseStoredConfig(manifest.vmConfig, pointId);
      return {
        id: pointId,
        repository,
        vm: manifest.vm.name,
        vsphere: true,
        datacenter: cfg.datacenter,
        folder: cfg.folderPath,
        pool: cfg.resourcePoolPath,
        host: cfg.hostName,
        firmware: cfg.firmware,
        nics: cfg.nics.map((n, index) => ({ index, type: n.type, network: n.network, macAddress: n.macAddress })),
        disks: cfg.disks.map((d, index) => ({ index, capacityBytes: d.capacityBytes, datastore: d.datastore })),
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/disks/:disk/files',
    tag: 'restore-points',
    permission: 'read',
    summary:
      'Browse files of a restore point disk: without partition and path its partitions; else a directory ' +
      '(paginated, sorted by name) or one entry',
    params: FilesParams,
    query: BrowseQuery,
    handler: ({ params, query }) => browse(ctx, params, query),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/disks/:disk/files/content',
    tag: 'restore-points',
    permission: 'restore',
    audit: true,
    summary: 'Download one regular file of a restore point disk (audited)',
    params: FilesParams,
    query: z.strictObject({ ...FilesLocation, path: guestPath(4096) }),
    response:
      "application/octet-stream: the file's bytes (holes as zeros), Content-Disposition: attachment with the file name",
    handler: async ({ params, query, req, reply, principal, remote, audit: a }) => {
      a({ pointId: params.id, disk: params.disk, partition: query.partition ?? null, path: query.path });
      const { repository, pointId } = locatePoint(catalog, params.id, query.repository);
      a({ repository });
      const { repo, pool } = await repos.forBrowsing(repository);
      const f = await openGuestFile(repo, pool, {
        pointId,
        disk: params.disk,
        partition: query.partition,
        path: query.path,
      });
      return sendGuestFile(catalog, f, { req, reply, principal: principal!, remote });
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/disks/:disk/find',
    tag: 'restore-points',
    permission: 'read',
    summary:
      'Find where a guest path or glob (*, ?, **, [a-z]) exists on a disk of a restore point (bounded: entries ' +
      'walked and results; `partial` and `notes` say when a bound was hit)',
    params: FilesParams,
    query: z.strictObject({
      ...FilesLocation,
      pattern: z.string().min(1).max(4096),
      limit: z.coerce.number().int().min(1).max(5000).default(500),
      maxEntries: z.coerce.number().int().min(1).max(1_000_000).optional(),
    }),
    handler: async ({ params, query, reply }) => {
      const { repository, pointId } = locatePoint(catalog, params.id, query.repository);
      const { repo, pool } = await repos.forBrowsing(repository);
      const r = await findFiles(repo, browseContext(pool, reply), {
        pattern: query.pattern,
        points: [pointId],
        disk: params.disk,
        partition: query.partition,
        maxResults: query.limit,
        entriesPerPoint: query.maxEntries,
      });
      if (r.points.length === 0)
        throw new CofferError('NOT_FOUND', `restore point ${pointId} is not in repository ${repository}`);
      return {
        repository,
        pointId,
        disk: params.disk,
        pattern: r.pattern,
        items: r.matches,
        entriesWalked: r.points[0]!.entriesWalked,
        partial: r.partial,
        notes: r.notes,
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/disks/:disk/diff',
    tag: 'restore-points',
    permission: 'read',
    summary:
      'What changed from this restore point to `other` (same VM unless force=true) on this disk: added, removed, ' +
      'changed (type, size, mtime, mode; content=true also reads same-size same-mtime files)',
    params: FilesParams,
    query: z.strictObject({
      ...FilesLocation,
      other: z.string().min(1).max(64),
      path: z.string().min(1).max(4096).optional(),
      content: z.enum(['true', 'false']).optional(),
      force: z.enum(['true', 'false']).optional(),
      limit: z.coerce.number().int().min(1).max(10_000).default(2000),
      maxEntries: z.coerce.number().int().min(1).max(1_000_000).optional(),
    }),
    handler: async ({ params, query, reply }) => {
      const { repository, pointId } = locatePoint(catalog, params.id, query.repository);
      const other = locatePoint(catalog, query.other, query.repository);
      if (other.repository !== repository)
        throw new CofferError('USAGE', `restore points ${pointId} and ${other.pointId} are in different repositories`);
      const { repo, pool } = await repos.forBrowsing(repository);
      const r = await diffFiles(repo, browseContext(pool, reply), {
        a: pointId,
        b: other.pointId,
        path: query.path,
        disk: params.disk,
        partition: query.partition,
        content: query.content === 'true',
        force: query.force === 'true',
        maxResults: query.limit,
        entries: query.maxEntries,
      });
      return { repository, ...r };
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/restore-points/:id/disks/:disk/files/archive',
    tag: 'restore-points',
    permission: 'restore',
    audit: true,
    summary: 'Download a directory (recursively) of a restore point disk as a tar stream (POSIX pax; audited)',
    params: FilesParams,
    query: z.strictObject({ ...FilesLocation, path: z.string().min(1).max(4096) }),
    response:
      'application/x-tar: the directory as <name>/..., regular files, directories and symlinks (never followed); ' +
      'other types skipped',
    handler: async ({ params, query, req, reply, principal, remote, audit: a }) => {
      a({ pointId: params.id, disk: params.disk, partition: query.partition ?? null, path: query.path, archive: true });
      const { repository, pointId } = locatePoint(catalog, params.id, query.repository);
      a({ repository });
      const { repo, pool } = await repos.forBrowsing(repository);
      const t = await openGuestArchive(repo, pool, {
        pointId,
        disk: params.disk,
        partition: query.partition,
        path: query.path,
      });
      return sendGuestArchive(catalog, t, { req, reply, principal: principal!, remote });
    },
  });
}

/** The repository holding restore point `id` (ids are random: the same id in two repositories needs ?repository=). */
function locatePoint(
  catalog: Pick<Catalog, 'restorePoints'>,
  id: string,
  repository: string | undefined,
): { repository: string; pointId: string } {
  const repositories = catalog.restorePoints.repositoriesOf(id, repository);
  if (repositories.length === 0)
    throw new CofferError('NOT_FOUND', `no restore point ${id}${repository ? ` in repository ${repository}` : ''}`);
  if (repositories.length > 1)
    throw new CofferError(
      'AMBIGUOUS',
      `restore point ${id} is in several repositories (${repositories.join(', ')}): add ?repository=`,
    );
  return { repository: repositories[0]!, pointId: id };
}

/** A disk's partition table, or a page of a directory, or one entry. */
async function browse(
  ctx: PointsContext,
  params: z.infer<typeof FilesParams>,
  query: z.infer<typeof BrowseQuery>,
): Promise<unknown> {
  const { repository, pointId } = locatePoint(ctx.catalog, params.id, query.repository);
  const { repo, pool } = await ctx.repos.forBrowsing(repository);
  if (query.partition === undefined && query.path === undefined) {
    const t = await listGuestPartitions(repo, pool, { pointId, disk: params.disk });
    const items = t.partitions.map((p) => ({
      number: p.number,
      startBytes: p.startBytes,
      sizeBytes: p.sizeBytes,
      type: p.type,
      name: p.name ?? null,
      container: Boolean(p.container),
      problem: p.problem ?? null,
      filesystem: p.filesystem ?? null,
    }));
    return {
      kind: 'partitions',
      repository,
      pointId,
      disk: params.disk,
      scheme: t.scheme,
      sizeBytes: t.sizeBytes,
      items,
      nextCursor: null,
    };
  }
  const c = decodeCursor(query.cursor, 1);
  const offset = c ? c[0] : 0;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
    throw new CofferError('USAGE', 'query.cursor: not a cursor this server issued');
  const r = await listGuestFiles(repo, pool, {
    pointId,
    disk: params.disk,
    partition: query.partition,
    path: query.path ?? '/',
    page: { offset, limit: query.limit },
  });
  const items = r.entries ?? [];
  const total = r.entriesTotal ?? 0;
  return {
    kind: r.entries ? 'directory' : 'entry',
    repository,
    pointId,
    disk: params.disk,
    partition: r.partition,
    filesystem: r.filesystem,
    path: r.path,
    warnings: r.warnings,
    entry: r.entry,
    total,
    items,
    nextCursor: r.entries && offset + items.length < total ? encodeCursor([offset + items.length]) : null,
  };
}

type HttpParts = { req: FastifyRequest; reply: FastifyReply; principal: Principal; remote: string };

/**
 * Streams an opened guest file as the answer. The first piece is read before any header is sent (a file unreadable
 * from the start gets a coded error answer).
 */
async function sendGuestFile(catalog: Pick<Catalog, 'audit'>, f: GuestFile, http: HttpParts): Promise<FastifyReply> {
  const content = f.content();
  let first: IteratorResult<Buffer, void>;
  try {
    first = await content.next();
  } catch (e) {
    await f.close();
    throw e;
  }
  const body = auditedStream(catalog, http, {
    content,
    first,
    close: () => f.close(),
    details: (bytes) => ({ partition: f.partition, size: f.entry.size, bytes }),
  });
  return sendDownload(http.reply, body, f.entry.name, 'application/octet-stream', f.entry.size);
}

/** Streams a guest directory as tar, like a file download. */
async function sendGuestArchive(
  catalog: Pick<Catalog, 'audit'>,
  t: GuestArchive,
  http: HttpParts,
): Promise<FastifyReply> {
  const body = auditedStream(catalog, http, {
    content: t.content(),
    close: () => t.close(),
    details: (bytes) => ({ partition: t.partition, ...t.stats, tarBytes: bytes }),
  });
  return sendDownload(http.reply, body, `${t.name}.tar`, 'application/x-tar');
}

/**
 * The body of a download (file or tar) from a guest content generator: from here on the request is audited when the
 * stream ends, complete or not (client gone: CANCELLED), instead of by the onResponse hook; the generator and what it
 * reads from are closed whatever happens.
 */
function auditedStream(
  catalog: Pick<Catalog, 'audit'>,
  http: HttpParts,
  src: {
    content: AsyncGenerator<Buffer, void, undefined>;
    /** a piece already read (the file download reads one before answering) */
    first?: IteratorResult<Buffer, void>;
    close(): Promise<void>;
    details(bytes: number): Record<string, unknown>;
  },
): Readable {
  const { req, principal, remote } = http;
  const { content } = src;
  let first = src.first;
  req.auditDone = true;
  let bytes = 0;
  let complete = false;
  let recorded = false;
  const record = (err: unknown) => {
    if (recorded) return;
    recorded = true;
    const code = err ? ((err as { code?: unknown }).code ?? 'INTERNAL') : undefined;
    catalog.audit.append({
      actor: principal.actor,
      action: `GET ${req.routeOptions.url}`,
      target: req.url.split('?')[0]!,
      remote,
      status: 200,
      details: {
        ...req.auditDetails,
        ...src.details(bytes),
        complete: complete && !err,
        ...(code ? { error: String(code) } : {}),
      },
    });
  };
  return new Readable({
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
        await src.close().catch(() => undefined);
        record(err ?? (complete ? undefined : { code: 'CANCELLED' }));
      })().finally(() => cb(err));
    },
  });
}

/** The headers of every guest download: an attachment, never sniffed, cached or rendered. */
function sendDownload(
  reply: FastifyReply,
  body: Readable,
  name: string,
  type: string,
  sizeBytes?: number,
): FastifyReply {
  if (sizeBytes !== undefined) reply.header('content-length', String(sizeBytes));
  return reply
    .code(200)
    .header('content-type', type)
    .header('content-disposition', contentDisposition(name))
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; sandbox")
    .send(body);
}

/**
 * A use-case context over the server's shared browsing pool: the use case's closing of "its" pool leaves the shared
 * one running; the request's end (client gone) cancels the walk.
 */
function browseContext(pool: CodecPool, reply: FastifyReply): UseCaseContext {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  const shared = new Proxy(pool, {
    get(target, key) {
      if (key === 'close') return async () => undefined;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { createPool: () => shared, signal: ac.signal };
}

/**
 * A Content-Disposition for an untrusted guest file name: a plain-ASCII fallback and the exact name in RFC 5987 form.
 */
export function contentDisposition(name: string): string {
  const wellFormed = name
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/[\x00-\x1f\x7f/\\]/g, '_')
    .slice(0, 255);
  const ascii =
    wellFormed
      .replace(/[^\x20-\x7e]|["%;]/g, '_')
      .replace(/^[.\s]+/, '')
      .slice(0, 200) || 'download';
  const utf8 = encodeURIComponent(wellFormed).replace(
    /['()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}
