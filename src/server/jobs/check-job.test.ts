import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CheckJob } from './check-job.js';
import type { JobContext } from './types.js';

test('a check job with boot params describes a src/jobs check with boot (marker, time limit in ms)', async () => {
  const describe = (params: Record<string, unknown>) =>
    new CheckJob().describe({ job: { repository: 'main', params } } as unknown as JobContext);
  assert.deepEqual(await describe({ pointId: 'a'.repeat(32), boot: { marker: 'login:', timeoutSeconds: 120 } }), {
    kind: 'check',
    repository: 'main',
    pointId: 'a'.repeat(32),
    files: false,
    boot: { marker: 'login:', timeoutMs: 120_000 },
    record: true,
  });
  // no boot without the params, and never with files (the indicators job)
  assert.equal('boot' in (await describe({ pointId: 'b'.repeat(32) })), false);
  const files = await describe({ pointId: 'c'.repeat(32), files: true, boot: { marker: 'x', timeoutSeconds: 1 } });
  assert.equal('boot' in files, false);
});
