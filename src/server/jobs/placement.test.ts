import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Job, ProxyCapabilities, ProxyRecord } from '../catalog/index.js';
import { cannotServe, needsOf, place, type ProxyLoad } from './placement.js';

const any: ProxyCapabilities = {
  kinds: ['backup', 'verify', 'prune'],
  transports: ['disk', 'http'],
  repositories: null,
  vcenters: null,
  clusters: null,
  datastores: null,
};

function job(over: Partial<Job> = {}): Job {
  return {
    id: 1,
    kind: 'backup',
    status: 'queued',
    trigger: 'manual',
    policyId: null,
    vm: 'vm1',
    repository: 'main',
    params: { disks: ['/d.raw'], tags: [] },
    attempt: 0,
    maxAttempts: 1,
    notBefore: '',
    createdAt: '',
    startedAt: null,
    finishedAt: null,
    requestedBy: 't',
    error: null,
    result: null,
    progress: null,
    runner: null,
    waitReason: null,
    ...over,
  };
}

function proxy(name: string, caps: Partial<ProxyCapabilities> = {}, over: Partial<ProxyRecord> = {}): ProxyRecord {
  return {
    owner: `proxy:${name}`,
    name,
    local: false,
    instance: null,
    version: 'x',
    tokenId: null,
    capabilities: { ...any, ...caps },
    concurrency: 2,
    drained: false,
    registeredAt: '',
    lastHeartbeat: '',
    ...over,
  };
}

const limits = { perSource: 1, perRepository: () => 10, perDatastore: 2 };
const load = (p: ProxyRecord, running = 0, online = true): ProxyLoad => ({ proxy: p, running, online });
const none = () => [] as string[];

test('capabilities: kind, repository, transport, vCenter, cluster, datastores', () => {
  const vc = job({ params: { disks: ['vsphere://vc:443/vm-1'], tags: [], vcenter: 'vc1' } });
  assert.equal(cannotServe(any, needsOf(job(), undefined)), undefined);
  assert.equal(cannotServe({ ...any, kinds: ['verify'] }, needsOf(job(), undefined)), 'does not run backup jobs');
  assert.equal(
    cannotServe({ ...any, repositories: ['other'] }, needsOf(job(), undefined)),
    'does not reach repository main',
  );
  assert.equal(
    cannotServe({ ...any, transports: ['http'] }, needsOf(job(), undefined)),
    'has no disk transport (has http)',
  );
  assert.equal(
    cannotServe({ ...any, transports: ['disk'] }, needsOf(vc, undefined)),
    'has no http transport (has disk)',
  );
  assert.equal(cannotServe({ ...any, vcenters: ['vc2'] }, needsOf(vc, undefined)), 'does not reach vCenter vc1');
  const onDs = needsOf(job(), { datastores: ['ds1', 'ds2'] });
  assert.equal(cannotServe({ ...any, datastores: ['ds1'] }, onDs), 'does not reach datastore ds2');
  assert.equal(cannotServe({ ...any, datastores: ['ds1', 'ds2'] }, onDs), undefined);
  const hot = { ...needsOf(job(), { cluster: 'c1' }), transport: 'hotadd' };
  assert.equal(cannotServe({ ...any, transports: ['hotadd'], clusters: ['c2'] }, hot), 'is not in cluster c1');
  assert.equal(cannotServe({ ...any, transports: ['hotadd'], clusters: ['c1'] }, hot), undefined);
  // a proxy naming its clusters serves only their VMs whatever the transport (scale16); a VM of no known cluster: any
  const inC1 = needsOf(vc, { cluster: 'c1' });
  assert.equal(cannotServe({ ...any, clusters: ['c2'] }, inC1), 'is not in cluster c1');
  assert.equal(cannotServe({ ...any, clusters: ['c1', 'c2'] }, inC1), undefined);
  assert.equal(cannotServe({ ...any, clusters: ['c2'] }, needsOf(vc, {})), undefined);
  // verify and prune need no transport
  assert.equal(
    cannotServe({ ...any, transports: [] }, needsOf(job({ kind: 'verify', vm: null }), undefined)),
    undefined,
  );
});

test('placement: only a capable, online, undrained proxy; the least loaded takes it', () => {
  const j = job();
  const n = needsOf(j, undefined);
  const a = proxy('a');
  const b = proxy('b');
  assert.deepEqual(place(j, n, a.owner, [load(a), load(b)], [], limits, none), { take: true }, 'tie: the claimant');
  assert.deepEqual(place(j, n, a.owner, [load(a, 1), load(b, 0)], [], limits, none), {
    take: false,
    reason: 'left to a less loaded proxy',
    waits: false,
  });
  assert.deepEqual(place(j, n, a.owner, [load(a, 1), load(b, 0, false)], [], limits, none), { take: true });
  const busy = place(j, n, a.owner, [load(a, 2), load(b, 2)], [], limits, none);
  assert.deepEqual(busy, { take: false, reason: 'waits: every proxy that can run it is busy', waits: true });
  const off = place(j, n, a.owner, [load(proxy('a', {}, { drained: true })), load(b, 0, false)], [], limits, none);
  assert.equal(off.take, false);
  assert.match((off as { reason: string }).reason, /no online proxy can run it \(a is drained; b is offline\)/);
  const nobody = place(j, n, a.owner, [], [], limits, none);
  assert.match((nobody as { reason: string }).reason, /no proxy is registered/);
  const incapable = place(j, n, a.owner, [load(proxy('a', { kinds: ['verify'] }))], [], limits, none);
  assert.match((incapable as { reason: string }).reason, /a does not run backup jobs/);
});

test('placement limits: per VM, per repository, per datastore, one prune per repository', () => {
  const a = proxy('a', {}, { concurrency: 10 });
  const loads = [load(a)];
  const running = (over: Partial<Job>) => [job({ id: 9, status: 'running', runner: a.owner, ...over })];
  const j = job();
  const n = needsOf(j, { datastores: ['ds1'] });
  assert.equal(place(j, n, a.owner, loads, running({}), limits, none).take, false, 'the same VM runs');
  const two = [...running({ vm: 'x' }), ...running({ vm: 'y' })];
  const ds = place(j, n, a.owner, loads, two, limits, () => ['ds1']);
  assert.deepEqual(ds, { take: false, reason: 'waits: datastore ds1 has 2 backups running', waits: true });
  assert.deepEqual(place(j, n, a.owner, loads, two, limits, none), { take: true });
  const repo = place(j, n, a.owner, loads, running({ vm: 'x' }), { ...limits, perRepository: () => 1 }, none);
  assert.equal(repo.take, false);
  const p = job({ kind: 'prune', vm: null });
  assert.equal(
    place(p, needsOf(p, undefined), a.owner, loads, running({ kind: 'prune', vm: null }), limits, none).take,
    false,
  );
});

test('a restore-vm job goes to a proxy that runs restore-vm and reaches its vCenter; no transport is asked for', () => {
  const rvm = job({
    kind: 'restore-vm',
    params: {
      pointId: 'p',
      vcenter: 'dr',
      name: 'n',
      datastore: 'ds',
      force: false,
      quick: false,
      powerOn: false,
      nicsDisconnected: false,
      keepMac: false,
      keepUuid: false,
      dryRun: true,
    },
  });
  const n = needsOf(rvm, undefined);
  assert.equal(n.vcenter, 'dr');
  assert.equal(n.transport, undefined);
  assert.equal(cannotServe(any, n), 'does not run restore-vm jobs');
  const rvmProxy = { ...any, kinds: ['restore-vm'], transports: [] };
  assert.equal(cannotServe(rvmProxy, n), undefined);
  assert.equal(cannotServe({ ...rvmProxy, vcenters: ['prod'] }, n), 'does not reach vCenter dr');
});
