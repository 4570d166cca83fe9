import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CodecPool, type CaptureReport, type VmSource } from '../engine/index.js';
import { Repository } from '../repository/index.js';
import { openSource } from '../sources/index.js';
import { MemoryBlobStore } from '../storage/index.js';
import { CofferError } from '../shared/index.js';
import { JOB_KINDS, parseJob, runJob, serializeJob, type JobDeps, type JobEvent } from './index.js';

const CS = 65536;

test('job descriptions: defaults filled in, a job round-trips through JSON unchanged', () => {
  const job = parseJob({
    kind: 'backup',
    repository: 'main',
    vm: 'web',
    source: { type: 'disks', disks: ['/d0.raw', 'nbd://127.0.0.1:10809/x'] },
  });
  assert.deepEqual(job, {
    kind: 'backup',
    repository: 'main',
    vm: 'web',
    source: { type: 'disks', disks: ['/d0.raw', 'nbd://127.0.0.1:10809/x'] },
    tags: [],
    verifyCbt: false,
  });
  const vs = parseJob({
    kind: 'backup',
    repository: 'main',
    source: { type: 'vsphere', url: 'vsphere://vc/vm-1', vcenter: 'lab' },
  });
  assert.equal(vs.kind === 'backup' && vs.source.type === 'vsphere' && vs.source.quiesce, true);
  for (const j of [
    job,
    vs,
    parseJob({ kind: 'verify', repository: 'r', readDataFraction: 0.25 }),
    parseJob({ kind: 'forget', repository: 'r', policy: { daily: 7 }, prune: true }),
    parseJob({ kind: 'check', repository: 'r', pointId: 'p', files: true }),
    parseJob({ kind: 'check', repository: 'r', pointId: 'p', boot: { marker: 'login:', timeoutMs: 300_000 } }),
  ]) {
    const text = serializeJob(j);
    assert.deepEqual(parseJob(text), j);
    assert.deepEqual(parseJob(JSON.parse(text)), j);
  }
  assert.deepEqual([...JOB_KINDS].sort(), [
    'backup',
    'check',
    'copy',
    'forget',
    'prune',
    'restore-disk',
    'restore-files',
    'restore-vm',
    'verify',
  ]);
});

test('job descriptions: invalid ones are USAGE errors naming the problem, never raw errors', () => {
  const bad: unknown[] = [
    '{not json',
    null,
    42,
    {},
    { kind: 'format-disk', repository: 'r' },
    { kind: 'backup', repository: 'r', source: { type: 'disks', disks: [] } },
    { kind: 'backup', repository: 'r', source: { type: 'disks', disks: ['a'] }, password: 'secret' },
    { kind: 'restore-disk', repository: 'r', pointId: 'p', disk: -1, target: '/t' },
    { kind: 'restore-disk', repository: 'r', pointId: 'p', disk: 0, target: '/t', format: 'iso' },
    { kind: 'verify', repository: 'r', readDataFraction: 2 },
    { kind: 'forget', repository: 'r', policy: { daily: 1.5 } },
    { kind: 'prune', repository: '' },
  ];
  for (const b of bad) {
    assert.throws(
      () => parseJob(b),
      (e: unknown) => e instanceof CofferError && e.code === 'USAGE' && /job description/.test(e.message),
      JSON.stringify(b),
    );
  }
  assert.throws(
    () => parseJob({ kind: 'restore-disk', repository: 'r', pointId: 'p', disk: -1, target: '/t' }),
    /disk/,
  );
});

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-jobs-'));
  const repo = await Repository.init(new MemoryBlobStore(), 'pw', { chunkSizeBytes: CS, kdf: { N: 1024 } });
  const data = Buffer.alloc(8 * CS);
  randomBytes(3 * CS).copy(data, CS); // zeros, data, zeros
  await writeFile(join(dir, 'disk0.raw'), data);
  const pools: CodecPool[] = [];
  const opened: string[] = [];
  const deps: JobDeps = {
    openRepository: async (ref) => {
      opened.push(ref);
      if (ref !== 'main') throw new CofferError('REPO_NOT_FOUND', `no repository ${ref}`);
      return repo;
    },
    createPool: (p) => {
      const pool = new CodecPool(p, 0);
      pools.push(pool);
      return pool;
    },
    openDisk: (spec, o) => openSource(spec, o),
  };
  return { dir, repo, data, deps, pools, opened, done: () => rm(dir, { recursive: true, force: true }) };
}

test('runJob: a retried backup whose lost attempt committed returns that point (adoptTag), not a second', async () => {
  const f = await fixture();
  try {
    const job = {
      kind: 'backup',
      repository: 'main',
      vm: 'web',
      source: { type: 'disks', disks: [join(f.dir, 'disk0.raw')] },
      tags: ['t1', 'coffer-job:7:1'],
      adoptTag: 'coffer-job:7:1',
    };
    const first = (await runJob(job, f.deps)) as { id: string; adopted?: boolean; bytesRead: number };
    assert.equal(first.adopted, undefined);
    assert.ok(first.bytesRead > 0);
    // the same job again (its process was lost after the commit, before it reported): the point is the result
    const events: JobEvent[] = [];
    const again = (await runJob(job, f.deps, { onEvent: (e) => events.push(e) })) as {
      id: string;
      adopted?: boolean;
      bytesRead: number;
      mode: string;
    };
    assert.equal(again.id, first.id);
    assert.equal(again.adopted, true);
    assert.equal(again.mode, 'full');
    assert.equal(again.bytesRead, first.bytesRead, "the committed attempt's stats");
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'warn' && /earlier attempt/.test(e.message)));
    assert.deepEqual(
      (await f.repo.listPoints()).map((p) => p.id),
      [first.id],
    );
    // another run of the job (another tag) is a new point, incremental on the first
    const next = (await runJob({ ...job, tags: ['t1', 'coffer-job:8:2'], adoptTag: 'coffer-job:8:2' }, f.deps)) as {
      id: string;
      parent: string | null;
      adopted?: boolean;
    };
    assert.notEqual(next.id, first.id);
    assert.equal(next.parent, first.id);
    assert.equal(next.adopted, undefined);
    await assert.rejects(
      runJob({ ...job, adoptTag: 'coffer-job:9:3' }, f.deps),
      (e: unknown) => e instanceof CofferError && e.code === 'USAGE' && /adoptTag/.test(e.message),
    );
  } finally {
    await f.done();
  }
});

test(
  'runJob: a backup, verify, restore and forget, each described as JSON, ' + 'run through the engine use cases',
  async () => {
    const f = await fixture();
    try {
      const events: JobEvent[] = [];
      const backupText = serializeJob({
        kind: 'backup',
        repository: 'main',
        vm: 'web',
        source: { type: 'disks', disks: [join(f.dir, 'disk0.raw')] },
        tags: ['t1'],
      });
      const b = (await runJob(backupText, f.deps, { onEvent: (e) => events.push(e) })) as {
        id: string;
        vm: string;
        mode: string;
        bytesRead: number;
      };
      assert.equal(b.vm, 'web');
      assert.equal(b.mode, 'full');
      const last = events.filter((e) => e.type === 'progress').at(-1);
      assert.deepEqual(last && { done: last.done, total: last.total, unit: last.unit }, {
        done: f.data.length,
        total: f.data.length,
        unit: 'bytes',
      });
      assert.ok(events.some((e) => e.type === 'log' && /backing up 1 disk\(s\) of VM web/.test(e.message)));
      assert.deepEqual((await f.repo.loadManifest(b.id)).tags, ['t1']);

      const v = (await runJob(JSON.stringify({ kind: 'verify', repository: 'main', readDataFraction: 1 }), f.deps)) as {
        ok: boolean;
        chunksRead: number;
      };
      assert.equal(v.ok, true);
      assert.ok(v.chunksRead >= 3);

      const target = join(f.dir, 'restored.raw');
      const r = (await runJob(
        { kind: 'restore-disk', repository: 'main', pointId: b.id, disk: 0, target },
        f.deps,
      )) as {
        bytesWritten: number;
      };
      assert.ok(r.bytesWritten > 0);
      assert.ok((await readFile(target)).equals(f.data));
      // the target exists now: without force the job fails as the CLI does
      await assert.rejects(
        runJob({ kind: 'restore-disk', repository: 'main', pointId: b.id, disk: 0, target }, f.deps),
        (e: unknown) => e instanceof CofferError && e.code === 'TARGET_EXISTS',
      );

      const second = (await runJob(backupText, f.deps)) as { id: string; mode: string; parent: string | null };
      assert.equal(second.parent, b.id);
      const fg = (await runJob({ kind: 'forget', repository: 'main', policy: { last: 1 }, prune: true }, f.deps)) as {
        removed: { id: string }[];
        prune?: { points: number };
      };
      assert.deepEqual(
        fg.removed.map((x) => x.id),
        [b.id],
      );
      assert.equal(fg.prune?.points, 1);
      assert.deepEqual(
        (await f.repo.listPoints()).map((p) => p.id),
        [second.id],
      );
      const pr = (await runJob({ kind: 'prune', repository: 'main' }, f.deps)) as { points: number };
      assert.equal(pr.points, 1);
      assert.ok(f.pools.length >= 4, 'every job ran with a codec pool from the injected factory');
    } finally {
      await f.done();
    }
  },
);

test(
  'runJob: failures are coded; a backup source is finished whatever happens; ' + 'vSphere only when injected',
  async () => {
    const f = await fixture();
    try {
      await assert.rejects(
        runJob({ kind: 'verify', repository: 'elsewhere' }, f.deps),
        (e: unknown) => e instanceof CofferError && e.code === 'REPO_NOT_FOUND',
      );
      await assert.rejects(
        runJob(
          {
            kind: 'backup',
            repository: 'main',
            vm: 'web',
            source: { type: 'disks', disks: [join(f.dir, 'missing.raw')] },
          },
          f.deps,
        ),
        (e: unknown) => e instanceof CofferError && e.code === 'SOURCE_UNREADABLE',
      );
      await assert.rejects(
        runJob({ kind: 'backup', repository: 'main', source: { type: 'vsphere', url: 'vsphere://vc/vm' } }, f.deps),
        (e: unknown) => e instanceof CofferError && e.code === 'NOT_AVAILABLE',
      );
      // a whole-VM restore: its three forms need an injected vCenter side; contradictory flags are USAGE first
      const rvm = { kind: 'restore-vm', repository: 'main', pointId: 'p', to: 'vsphere://vc/n', datastore: 'ds' };
      for (const extra of [{}, { dryRun: true }, { force: true, quick: true }])
        await assert.rejects(
          runJob({ ...rvm, ...extra }, f.deps),
          (e: unknown) => e instanceof CofferError && e.code === 'NOT_AVAILABLE',
        );
      for (const extra of [{ quick: true }, { force: true, quick: true, dryRun: true }, { proxyVm: 'px' }])
        await assert.rejects(
          runJob({ ...rvm, ...extra }, { ...f.deps, vmRestoreTarget: () => assert.fail('not reached') }),
          (e: unknown) => e instanceof CofferError && e.code === 'USAGE',
        );
      // Test double: a VM source standing in for a vCenter VM (vcsim-backed tests of the real one are in
      // test/vsphere-*); its disk is a real file source. finish() must run on success and on failure, and its report is
      // in the result.
      let finished = 0;
      const vmSource = async (fail: boolean): Promise<VmSource> => {
        const disk = await openSource(join(f.dir, 'disk0.raw'));
        return {
          vmName: 'vm-from-hypervisor',
          vmId: 'vm-42',
          disks: [
            fail
              ? {
                  ...disk,
                  uri: disk.uri,
                  sizeBytes: disk.sizeBytes,
                  read: async () => {
                    throw new CofferError('SOURCE_UNREADABLE', 'simulated read failure');
                  },
                  close: () => disk.close(),
                }
              : disk,
          ],
          consistency: { snapshot: true, quiesced: false },
          finish: async (): Promise<CaptureReport> => {
            finished++;
            await disk.close();
            return { kind: 'vsphere', cleanedUp: true, details: { snapshot: 'coffer-x', snapshotRemoved: true } };
          },
        };
      };
      let fail = false;
      const deps: JobDeps = {
        ...f.deps,
        openVsphereSource: async (spec) => (assert.equal(spec.url, 'vsphere://vc/vm'), vmSource(fail)),
      };
      const ok = (await runJob(
        { kind: 'backup', repository: 'main', source: { type: 'vsphere', url: 'vsphere://vc/vm' } },
        deps,
      )) as { vm: string; vsphere: { snapshotRemoved: boolean } };
      assert.equal(ok.vm, 'vm-from-hypervisor');
      assert.equal(ok.vsphere.snapshotRemoved, true);
      assert.equal(finished, 1);
      assert.equal((await f.repo.listPoints()).at(-1)?.vm.id, 'vm-42');
      fail = true;
      await assert.rejects(
        runJob({ kind: 'backup', repository: 'main', source: { type: 'vsphere', url: 'vsphere://vc/vm' } }, deps),
        (e: unknown) => e instanceof CofferError && e.code === 'SOURCE_UNREADABLE',
      );
      assert.equal(finished, 2, 'the capture is finished (snapshot removed) after a failed backup too');
      // the repository opens first for a vSphere source: a repository that cannot open never takes a snapshot
      const before = finished;
      await assert.rejects(
        runJob({ kind: 'backup', repository: 'elsewhere', source: { type: 'vsphere', url: 'vsphere://vc/vm' } }, deps),
        (e: unknown) => e instanceof CofferError && e.code === 'REPO_NOT_FOUND',
      );
      assert.equal(finished, before);
      const controller = new AbortController();
      controller.abort(new CofferError('CANCELLED', 'test'));
      await assert.rejects(
        runJob({ kind: 'verify', repository: 'main' }, f.deps, { signal: controller.signal }),
        (e: unknown) => e instanceof CofferError && e.code === 'CANCELLED',
      );
    } finally {
      await f.done();
    }
  },
);
