import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../../shared/index.js';
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

test('a check job with the agent, forwards and a script: the script is in bootScriptsDir', async () => {
  const params = {
    pointId: 'd'.repeat(32),
    boot: {
      marker: 'login:',
      timeoutSeconds: 60,
      agent: true,
      forward: [22, 80],
      script: 'smoke.sh',
      scriptTimeoutSeconds: 30,
    },
  };
  const job = { job: { repository: 'main', params } } as unknown as JobContext;
  const described = await new CheckJob({ bootScriptsDir: '/etc/coffer/boot-scripts' }).describe(job);
  assert.deepEqual((described as { boot?: unknown }).boot, {
    marker: 'login:',
    timeoutMs: 60_000,
    agent: true,
    forwards: [22, 80],
    script: '/etc/coffer/boot-scripts/smoke.sh',
    scriptTimeoutMs: 30_000,
  });
  // without a bootScriptsDir in the config, a script is refused (who starts jobs does not choose what runs)
  await assert.rejects(
    new CheckJob().describe(job),
    (e: unknown) => e instanceof CofferError && e.code === 'USAGE' && /no bootScriptsDir/.test(e.message),
  );
});
