import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobState, jobView } from './job-state.js';
import type { Job } from './types.js';
import { isPermanentFailure, RetryPolicy } from './retry-policy.js';

describe('RetryPolicy (issue 20: failures that cannot succeed are not retried)', () => {
  const retry = new RetryPolicy({ maxAttempts: 3, backoffSeconds: 30 });

  it('retries transient failures up to maxAttempts', () => {
    assert.equal(retry.shouldRetry('TRANSIENT', 1, 3), true);
    assert.equal(retry.shouldRetry('TRANSIENT', 3, 3), false);
    assert.equal(retry.shouldRetry('SOURCE_UNREADABLE', 1, 3, 'nbd connection closed at offset 4096'), true);
    assert.equal(retry.shouldRetry('LOCKED', 2, 3), true);
  });

  it('does not retry permanent codes', () => {
    for (const code of [
      'NOT_FOUND',
      'WRONG_KEY',
      'ACCESS_DENIED',
      'VSPHERE_AUTH',
      'VSPHERE_DISK_LAYOUT',
      'SOURCE_UNSUPPORTED',
      'USAGE',
      'CORRUPT',
    ] as const) {
      assert.equal(retry.shouldRetry(code, 1, 3), false, code);
      assert.equal(isPermanentFailure(code), true, code);
    }
  });

  it('does not retry a source that does not exist or cannot be opened', () => {
    for (const m of [
      "cannot open /data/gone.raw: ENOENT: no such file or directory, open '/data/gone.raw'",
      'cannot open /dev/sdz: EACCES: permission denied',
      '/srv/disks is a directory',
    ])
      assert.equal(retry.shouldRetry('SOURCE_UNREADABLE', 1, 3, m), false, m);
    assert.equal(retry.shouldRetry('IO', 1, 3, 'ENOENT: no such file or directory'), false);
  });

  it('backs off exponentially; restores get one attempt', () => {
    assert.deepEqual(
      [1, 2, 3].map((a) => retry.delayMs(a)),
      [30_000, 60_000, 120_000],
    );
    assert.equal(retry.maxAttempts('restore'), 1);
    assert.equal(retry.maxAttempts('backup'), 3);
  });
});

describe('jobState: failed-awaiting-retry is its own state', () => {
  const err = { code: 'TRANSIENT', message: 'HTTP 503' };
  it('a queued job that failed and waits is retrying, with its retry time', () => {
    assert.equal(jobState({ status: 'queued', attempt: 1, error: err }), 'retrying');
    const v = jobView({ status: 'queued', attempt: 1, error: err, notBefore: '2026-01-01T00:01:00Z' } as Job);
    assert.equal(v.status, 'retrying');
    assert.equal(v.retryAt, '2026-01-01T00:01:00Z');
  });
  it('a job that never ran is queued; the others keep their status', () => {
    assert.equal(jobState({ status: 'queued', attempt: 0, error: null }), 'queued');
    assert.equal(jobState({ status: 'running', attempt: 2, error: err }), 'running');
    assert.equal(jobState({ status: 'failed', attempt: 3, error: err }), 'failed');
    assert.equal(jobState({ status: 'succeeded', attempt: 1, error: null }), 'succeeded');
  });
});
