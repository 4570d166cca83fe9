import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { parseWith } from './config.js';
import { globToRegExp, PolicySpecSchema, resolvePolicyVms, retentionStatus } from './policy.js';

const inventory = [
  { name: 'web01', disks: ['/d/web01.raw'] },
  { name: 'web02', disks: ['/d/web02.raw'] },
  { name: 'db01', disks: ['/d/db01.raw', '/d/db01-log.raw'] },
  { name: 'web.x', disks: ['/d/webx.raw'] },
];

test('glob patterns match whole names; regex metacharacters are literal', () => {
  assert.ok(globToRegExp('web*').test('web01'));
  assert.ok(!globToRegExp('web*').test('myweb01'));
  assert.ok(globToRegExp('web0?').test('web02'));
  assert.ok(!globToRegExp('web0?').test('web012'));
  assert.ok(globToRegExp('web.x').test('web.x'));
  assert.ok(!globToRegExp('web.x').test('webax'));
  assert.ok(!globToRegExp('(a|b)').test('a'));
});

test('a policy resolves names, patterns and explicit sources; names missing from the inventory are reported', () => {
  const spec = parseWith(PolicySpecSchema, { name: 'p', repository: 'main', vms: [{ pattern: 'web0*' }, { name: 'db01' }, { name: 'ghost' }, { name: 'adhoc', disks: ['nbd://h/x'] }, { name: 'web01' }] }, 'policy');
  const r = resolvePolicyVms(spec, inventory);
  assert.deepEqual(r.vms.map((v) => v.name), ['web01', 'web02', 'db01', 'adhoc']);
  assert.deepEqual(r.vms.find((v) => v.name === 'db01')!.disks, ['/d/db01.raw', '/d/db01-log.raw']);
  assert.deepEqual(r.missing, ['ghost']);
  assert.equal(spec.rpoHours, 24);
  assert.equal(spec.enabled, true);
});

test('invalid policies name every bad field', () => {
  const bad = { name: '', repository: 'main', vms: [{ name: 'x', pattern: 'y' }], schedule: '61 * * * *', rpoHours: 0, retention: { keepDaily: 1.5, keepForever: 1 }, verify: { schedule: '* * * * *', readDataPercent: 101 } };
  assert.throws(
    () => parseWith(PolicySpecSchema, bad, 'policy', 'body'),
    (e: unknown) => {
      assert.ok(e instanceof CofferError);
      assert.equal(e.code, 'USAGE');
      for (const path of ['body.name', 'body.vms[0]', 'body.schedule', 'body.rpoHours', 'body.retention.keepDaily', 'body.retention', 'body.verify.readDataPercent']) {
        assert.ok(e.message.includes(`${path}: `), `${path} in ${e.message}`);
      }
      assert.match(e.message, /invalid cron expression "61 \* \* \* \*"/);
      assert.match(e.message, /keepForever/);
      return true;
    },
  );
});

test('retention is applied after each backup; a retention that keeps nothing is refused', () => {
  const spec = parseWith(PolicySpecSchema, { name: 'p', repository: 'main', vms: [{ name: 'a' }], retention: { keepLast: 3 } }, 'policy');
  assert.deepEqual(retentionStatus(spec), { configured: true, applied: true, status: 'applied after each backup' });
  assert.equal(spec.pruneAfterForget, false);
  const none = parseWith(PolicySpecSchema, { name: 'p', repository: 'main', vms: [{ name: 'a' }] }, 'policy');
  assert.deepEqual(retentionStatus(none), { configured: false, applied: false, status: 'none' });
  for (const retention of [{}, { keepLast: 0, keepDaily: 0 }]) {
    assert.throws(
      () => parseWith(PolicySpecSchema, { name: 'p', repository: 'main', vms: [{ name: 'a' }], retention }, 'policy'),
      (e: CofferError) => {
        assert.equal(e.code, 'USAGE');
        assert.match(e.message, /retention: must keep something/);
        return true;
      },
    );
  }
});
