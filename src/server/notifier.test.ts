import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupTransition } from './notifier.js';

describe('backupTransition: first failure and recovery (issue 20)', () => {
  const backup = (status: string) => ({ id: 2, kind: 'backup', vm: 'db01', status });
  it('a failure after a success (or the first backup ever) is a first failure', () => {
    assert.equal(backupTransition(backup('failed'), { status: 'succeeded' }), 'job.first-failure');
    assert.equal(backupTransition(backup('failed'), undefined), 'job.first-failure');
  });
  it('a failure after a failure is not notified again as a first failure', () => {
    assert.equal(backupTransition(backup('failed'), { status: 'failed' }), null);
  });
  it('a success after a failure is a recovery; after a success nothing', () => {
    assert.equal(backupTransition(backup('succeeded'), { status: 'failed' }), 'job.recovered');
    assert.equal(backupTransition(backup('succeeded'), { status: 'succeeded' }), null);
    assert.equal(backupTransition(backup('succeeded'), undefined), null);
  });
  it('only backups of a VM; cancelled jobs change nothing', () => {
    assert.equal(backupTransition({ ...backup('failed'), kind: 'verify' }, undefined), null);
    assert.equal(backupTransition({ ...backup('failed'), vm: null }, undefined), null);
    assert.equal(backupTransition(backup('cancelled'), { status: 'failed' }), null);
  });
});
