/**
 * The required keys of each response type the console reads, as data: test/server-console-api.test.ts checks real
 * answers of a running server against them. Each list must name every required key of its type, and only those
 * (it does not compile otherwise), so the console's types and this check cannot drift apart either.
 */
import type {
  ApiToken,
  AuditRecord,
  Dashboard,
  Job,
  Me,
  Policy,
  ProxyInfo,
  RepositoryStats,
  RestorePoint,
  User,
  Vm,
} from './types.js';

type RequiredKeys<T> = { [K in keyof T]-?: Record<string, never> extends Pick<T, K> ? never : K }[keyof T];
/** exactly the required keys of T (a missing or extra one is a compile error) */
const keys =
  <T>() =>
  <const L extends readonly RequiredKeys<T>[]>(
    ...list: L & ([RequiredKeys<T>] extends [L[number]] ? unknown : never)
  ) =>
    list as readonly string[];

export const SHAPES = {
  me: keys<Me>()('actor', 'role'),
  vm: keys<Vm>()(
    'name',
    'protected',
    'covered',
    'failing',
    'policies',
    'inInventory',
    'lastPoint',
    'lastJob',
    'rpoHours',
    'rpoCompliant',
    'ageSeconds',
    'points',
  ),
  dashboard: keys<Dashboard>()('vms', 'repositories', 'trend', 'failures', 'failingVms', 'jobs'),
  repository: keys<RepositoryStats>()(
    'name',
    'location',
    'storedBytes',
    'chunkBytes',
    'logicalBytes',
    'chunks',
    'points',
    'dedupRatio',
    'updatedAt',
    'error',
  ),
  restorePoint: keys<RestorePoint>()(
    'id',
    'repository',
    'vm',
    'time',
    'endTime',
    'mode',
    'parent',
    'tags',
    'disks',
    'bytesRead',
    'bytesStored',
    'verification',
    'status',
  ),
  job: keys<Job>()(
    'id',
    'kind',
    'status',
    'trigger',
    'policyId',
    'vm',
    'repository',
    'params',
    'attempt',
    'maxAttempts',
    'createdAt',
    'startedAt',
    'finishedAt',
    'requestedBy',
    'error',
    'progress',
  ),
  proxy: keys<ProxyInfo>()(
    'owner',
    'name',
    'local',
    'version',
    'capabilities',
    'concurrency',
    'drained',
    'registeredAt',
    'lastHeartbeat',
    'state',
    'running',
    'jobs',
  ),
  policy: keys<Policy>()(
    'id',
    'name',
    'description',
    'enabled',
    'repository',
    'vms',
    'rpoHours',
    'pruneAfterForget',
    'tags',
    'retentionStatus',
    'retentionKeeps',
    'nextRuns',
    'resolvedVms',
  ),
  user: keys<User>()('username', 'role'),
  token: keys<ApiToken>()('id', 'name', 'role', 'createdAt', 'createdBy', 'expiresAt', 'lastUsedAt'),
  audit: keys<AuditRecord>()('id', 'time', 'actor', 'action', 'target', 'remote', 'status', 'details'),
} as const;
