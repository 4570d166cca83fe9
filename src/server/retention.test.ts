import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Repository } from '../repository/index.js';
import type { CofferError } from '../shared/index.js';
import {
  applyPolicyRetention,
  describeRetention,
  isEmptyRetention,
  policyTag,
  toRetentionPolicy,
} from './retention.js';

test("a policy's keep* fields map to the engine's retention rules", () => {
  assert.deepEqual(
    toRetentionPolicy({ keepLast: 1, keepHourly: 2, keepDaily: 3, keepWeekly: 4, keepMonthly: 5, keepYearly: 6 }),
    { last: 1, hourly: 2, daily: 3, weekly: 4, monthly: 5, yearly: 6 },
  );
  assert.deepEqual(toRetentionPolicy({ keepDaily: 7 }), { daily: 7 });
  assert.equal(isEmptyRetention({}), true);
  assert.equal(isEmptyRetention({ keepLast: 0, keepYearly: 0 }), true);
  assert.equal(isEmptyRetention({ keepWeekly: 1 }), false);
});

test('an empty retention (a policy stored by an older build) is refused before the repository is touched', async () => {
  // the repository is never used: any access would throw a TypeError instead of the USAGE refusal
  const repo = {} as Repository;
  await assert.rejects(
    applyPolicyRetention(repo, { vm: 'vm1', retention: { keepLast: 0 }, signal: new AbortController().signal }),
    (e: CofferError) => {
      assert.equal(e.code, 'USAGE');
      assert.match(e.message, /keeps nothing/);
      return true;
    },
  );
});

test("describeRetention says what each rule keeps, and that only the policy's own points are touched", () => {
  const d = describeRetention({ keepLast: 3, keepDaily: 7 });
  assert.equal(d[0], 'keepLast 3: the 3 newest restore points, whatever their age');
  assert.match(
    d[1]!,
    /^keepDaily 7: the newest restore point of each of the last 7 days .*earlier points of the same day go/,
  );
  assert.match(d[2]!, /only restore points this policy made are counted and removed/);
  assert.match(
    describeRetention({ keepWeekly: 1, removeOtherPoints: true }).join('\n'),
    /1 ISO week .*removeOtherPoints/s,
  );
  assert.equal(policyTag('0123456789ab'), 'coffer-policy:0123456789ab');
});
