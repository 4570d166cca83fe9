import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { parseWith } from './config.js';
import { DEFAULT_SIGNAL_THRESHOLDS } from '../engine/index.js';
import { globToRegExp, PolicySpecSchema, policySignals, resolvePolicyVms, retentionStatus } from './policy.js';

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
  const spec = parseWith(
    PolicySpecSchema,
    {
      name: 'p',
      repository: 'main',
      vms: [
        { pattern: 'web0*' },
        { name: 'db01' },
        { name: 'ghost' },
        { name: 'adhoc', disks: ['nbd://h/x'] },
        { name: 'web01' },
      ],
    },
    'policy',
  );
  const r = resolvePolicyVms(spec, inventory);
  assert.deepEqual(
    r.vms.map((v) => v.name),
    ['web01', 'web02', 'db01', 'adhoc'],
  );
  assert.deepEqual(r.vms.find((v) => v.name === 'db01')!.disks, ['/d/db01.raw', '/d/db01-log.raw']);
  assert.deepEqual(r.missing, ['ghost']);
  assert.equal(spec.rpoHours, 24);
  assert.equal(spec.enabled, true);
});

test('invalid policies name every bad field', () => {
  const bad = {
    name: '',
    repository: 'main',
    vms: [{ name: 'x', pattern: 'y' }],
    schedule: '61 * * * *',
    rpoHours: 0,
    retention: { keepDaily: 1.5, keepForever: 1 },
    verify: { schedule: '* * * * *', readDataPercent: 101 },
  };
  assert.throws(
    () => parseWith(PolicySpecSchema, bad, 'policy', 'body'),
    (e: unknown) => {
      assert.ok(e instanceof CofferError);
      assert.equal(e.code, 'USAGE');
      for (const path of [
        'body.name',
        'body.vms[0]',
        'body.schedule',
        'body.rpoHours',
        'body.retention.keepDaily',
        'body.retention',
        'body.verify.readDataPercent',
      ]) {
        assert.ok(e.message.includes(`${path}: `), `${path} in ${e.message}`);
      }
      assert.match(e.message, /invalid cron expression "61 \* \* \* \*"/);
      assert.match(e.message, /keepForever/);
      return true;
    },
  );
});

test('retention is applied after each backup; a retention that keeps nothing is refused', () => {
  const spec = parseWith(
    PolicySpecSchema,
    { name: 'p', repository: 'main', vms: [{ name: 'a' }], retention: { keepLast: 3 } },
    'policy',
  );
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

test(
  'vCenter selectors: pattern, folder and name within their vCenter; static selectors do not see vCenter VMs; ' +
    'unreadable vCenters are reported',
  () => {
    const inv = [
      ...inventory,
      { name: 'web01', disks: ['vsphere://vc:443/vm-1'], vcenter: 'prod', path: '/DC0/vm/web/web01' },
      { name: 'web09', disks: ['vsphere://vc:443/vm-9'], vcenter: 'prod', path: '/DC0/vm/web/sub/web09' },
      { name: 'db07', disks: ['vsphere://vc:443/vm-7'], vcenter: 'prod', path: '/DC0/vm/db/db07' },
      { name: 'lab1', disks: ['vsphere://lab:443/vm-3'], vcenter: 'lab', path: '/DC0/vm/lab1' },
    ];
    const spec = (vms: unknown[]) => parseWith(PolicySpecSchema, { name: 'p', repository: 'main', vms }, 'policy');
    const names = (r: { vms: { name: string }[] }) => r.vms.map((v) => v.name).sort();
    assert.deepEqual(names(resolvePolicyVms(spec([{ vcenter: 'prod', folder: '/DC0/vm/web' }]), inv)), [
      'web01',
      'web09',
    ]);
    assert.deepEqual(names(resolvePolicyVms(spec([{ vcenter: 'prod', folder: 'DC0/vm/web/' }]), inv)), [
      'web01',
      'web09',
    ]);
    assert.deepEqual(names(resolvePolicyVms(spec([{ vcenter: 'prod', folder: '/DC0/vm/we' }]), inv)), []);
    assert.deepEqual(names(resolvePolicyVms(spec([{ vcenter: 'prod', pattern: '*0?' }]), inv)), [
      'db07',
      'web01',
      'web09',
    ]);
    assert.deepEqual(
      names(resolvePolicyVms(spec([{ vcenter: 'prod', pattern: 'web*', folder: '/DC0/vm/web/sub' }]), inv)),
      ['web09'],
    );
    const r = resolvePolicyVms(
      spec([
        { vcenter: 'prod', name: 'db07' },
        { vcenter: 'prod', name: 'gone' },
      ]),
      inv,
    );
    assert.deepEqual(r.vms, [{ name: 'db07', disks: ['vsphere://vc:443/vm-7'], vcenter: 'prod' }]);
    assert.deepEqual(r.missing, ['gone']);
    // the static pattern sees only the static inventory (its web01 has a file disk)
    assert.deepEqual(resolvePolicyVms(spec([{ pattern: 'web01' }]), inv).vms, [
      { name: 'web01', disks: ['/d/web01.raw'] },
    ]);
    const e = resolvePolicyVms(
      spec([
        { vcenter: 'lab', pattern: '*' },
        { vcenter: 'prod', name: 'db07' },
      ]),
      inv,
      new Map([['lab', { code: 'VSPHERE_AUTH', message: 'no' }]]),
    );
    assert.deepEqual(names(e), ['db07']);
    assert.deepEqual(e.vcenterErrors, [{ vcenter: 'lab', code: 'VSPHERE_AUTH', message: 'no' }]);
  },
);

test('policy signals: thresholds over the defaults; holds and the indicators job only with a signals section', () => {
  const base = { name: 'p', repository: 'main', vms: [{ name: 'vm1' }] };
  const none = policySignals(PolicySpecSchema.parse(base));
  assert.deepEqual(none.thresholds, DEFAULT_SIGNAL_THRESHOLDS);
  assert.deepEqual(none.overrides, {});
  assert.equal(none.holdOnSuspicious, false);
  assert.equal(none.fileIndicators, false);
  const on = policySignals(PolicySpecSchema.parse({ ...base, signals: { suspiciousScore: 70 } }));
  assert.deepEqual(on.overrides, { suspiciousScore: 70 });
  assert.equal(on.thresholds.suspiciousScore, 70);
  assert.equal(on.thresholds.historyPoints, DEFAULT_SIGNAL_THRESHOLDS.historyPoints);
  assert.equal(on.holdOnSuspicious, true);
  assert.equal(on.holdDays, 30);
  assert.equal(on.fileIndicators, true);
  assert.throws(() => PolicySpecSchema.parse({ ...base, signals: { minHistoryPoints: 20 } }), /minHistoryPoints/);
  assert.throws(() => PolicySpecSchema.parse({ ...base, signals: { holdDays: -1 } }));
  assert.deepEqual(PolicySpecSchema.parse({ ...base, check: {} }).check, { everyPoints: 1, timeoutMinutes: 10 });
  // a boot check in QEMU (ADR 0025): marker and time limit default to login: and 300 s
  assert.deepEqual(PolicySpecSchema.parse({ ...base, check: { boot: {} } }).check?.boot, {
    marker: 'login:',
    timeoutSeconds: 300,
  });
  assert.throws(() => PolicySpecSchema.parse({ ...base, check: { boot: { marker: '' } } }));
  assert.throws(() => PolicySpecSchema.parse({ ...base, check: { boot: { timeoutSeconds: 0 } } }));
  // the guest agent as the success signal, forwarded ports, a boot script named in the server's bootScriptsDir
  const boot = { agent: true, forward: [22], script: 'smoke-test.sh', scriptTimeoutSeconds: 60 };
  assert.deepEqual(PolicySpecSchema.parse({ ...base, check: { boot } }).check?.boot, {
    marker: 'login:',
    timeoutSeconds: 300,
    ...boot,
  });
  // a path is not a script name: who edits policies does not choose what runs on the server
  for (const script of ['/bin/sh', '../x.sh', 'a/b', '.hidden', ''])
    assert.throws(() => PolicySpecSchema.parse({ ...base, check: { boot: { script } } }), /bootScriptsDir|string/);
  assert.throws(() => PolicySpecSchema.parse({ ...base, check: { boot: { forward: [0] } } }));
  assert.throws(() => PolicySpecSchema.parse({ ...base, check: { boot: { forward: [] } } }));
});
