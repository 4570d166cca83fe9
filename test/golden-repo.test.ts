import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { CodecPool, restoreDisk, verify } from '../src/engine/index.js';
import { Repository } from '../src/repository/index.js';
import { LocalBlobStore } from '../src/storage/index.js';
import { coffer, json, tempDir } from './helpers/cli.js';

const GOLDEN = new URL('../../test/golden/', import.meta.url).pathname;

interface Golden {
  password: string;
  points: { id: string; vm: string; parent: string | null; disks: { sizeBytes: number; sha256: string }[] }[];
}

/** A repository written by format version 1 must stay readable, bit-exact, by every later Coffer. */
test('golden repository v1: lists, restores bit-exact and verifies', async () => {
  const golden = JSON.parse(readFileSync(join(GOLDEN, 'repo-v1.json'), 'utf8')) as Golden;
  const tmp = tempDir();
  try {
    const repoDir = join(tmp.path, 'repo');
    cpSync(join(GOLDEN, 'repo-v1'), repoDir, { recursive: true });
    const repo = await Repository.open(new LocalBlobStore(repoDir), golden.password);
    assert.equal(repo.config.formatVersion, 1);
    assert.equal(repo.chunkSizeBytes, 65536);
    const points = await repo.listPoints();
    assert.deepEqual(
      points.map((p) => [p.id, p.vm.name, p.parent]),
      golden.points.map((p) => [p.id, p.vm, p.parent]),
    );
    const pool = new CodecPool(repo.codecParams, 1, 0); // through a worker from the first chunk
    try {
      for (const gp of golden.points) {
        for (const [i, gd] of gp.disks.entries()) {
          const sink = new PassThrough();
          const hash = createHash('sha256');
          let size = 0;
          sink.on('data', (d: Buffer) => {
            hash.update(d);
            size += d.length;
          });
          await restoreDisk(repo, pool, { pointId: gp.id, disk: i, target: { kind: 'stream', stream: sink } });
          assert.equal(size, gd.sizeBytes);
          assert.equal(hash.digest('hex'), gd.sha256, `point ${gp.id} disk ${i}`);
        }
      }
      const report = await verify(repo, pool, { readDataFraction: 1 });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.points, 2);
    } finally {
      await pool.close();
    }
    const cli = coffer(['list', '--repo', repoDir, '--json'], { COFFER_PASSWORD: golden.password });
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(
      json<{ id: string }[]>(cli).map((p) => p.id),
      golden.points.map((p) => p.id),
    );
  } finally {
    tmp.cleanup();
  }
});
