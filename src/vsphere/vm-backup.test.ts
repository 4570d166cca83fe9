// Snapshot ownership: only Coffer's own orphans older than their lease (or of a dead local process) are removed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isOrphan, ownerLine, parseOwner } from './vm-backup.js';

const now = new Date('2026-12-05T12:00:00Z');
const self = { host: 'backup1', alive: (pid: number) => pid === 100 };
const desc = (host: string, pid: number, startedMinAgo: number, leaseS = 3600) =>
  `Created by Coffer.\n${ownerLine({
    host,
    pid,
    job: 'job 7/a',
    started: new Date(now.getTime() - startedMinAgo * 60_000).toISOString(),
    leaseS,
  })}`;

test('owner line round trip (host and job with spaces and slashes)', () => {
  assert.deepEqual(parseOwner(desc('backup 1', 42, 5)), {
    host: 'backup 1',
    pid: 42,
    job: 'job 7/a',
    started: '2026-12-05T11:55:00.000Z',
    leaseS: 3600,
  });
  assert.equal(parseOwner('made by hand'), undefined);
  assert.equal(parseOwner('coffer-owner: host=%E0%A4%A pid=1 job= started=x lease-s=1'), undefined);
});

test(
  'orphans: a dead local process, an expired lease, no owner line; not a live process or ' +
    'another host within its lease',
  () => {
    assert.equal(isOrphan(desc('backup1', 100, 5), now, self), false); // alive here
    assert.equal(isOrphan(desc('backup1', 101, 5), now, self), true); // dead here
    assert.equal(isOrphan(desc('backup2', 101, 5), now, self), false); // another host, lease runs
    assert.equal(isOrphan(desc('backup2', 101, 61), now, self), true); // lease ran out
    assert.equal(isOrphan(desc('backup1', 100, 61), now, self), true); // even a live pid: lease ran out (pid reuse)
    assert.equal(isOrphan('Created by an old Coffer', now, self), true);
    assert.equal(isOrphan('coffer-owner: host=x pid=1 job= started=not-a-date lease-s=5', now, self), true);
  },
);
