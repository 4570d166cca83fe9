import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from './errors.js';
import { exponentialDelay, retry, sleep } from './retry.js';

const noSleep = async () => undefined;
const isCancelled = (e: unknown) => e instanceof CofferError && e.code === 'CANCELLED';

test('sleep: resolves after the wait; an abort during the wait rejects at once with CANCELLED', async () => {
  await sleep(1);
  const ac = new AbortController();
  const p = sleep(3_600_000, { signal: ac.signal });
  setImmediate(() => ac.abort());
  // an hour-long sleep that settles at all (the test would time out) was cut short by the abort
  await assert.rejects(p, isCancelled);
});

test('sleep: an already aborted signal rejects without waiting; a CofferError reason is kept', async () => {
  await assert.rejects(sleep(3_600_000, { signal: AbortSignal.abort() }), isCancelled);
  const ac = new AbortController();
  ac.abort(new CofferError('CANCELLED', 'job cancelled by admin'));
  await assert.rejects(
    sleep(3_600_000, { signal: ac.signal }),
    (e: unknown) => isCancelled(e) && (e as Error).message === 'job cancelled by admin',
  );
});

test('retry: retries what is retryable with the policy delays, up to the attempts', async () => {
  const delays: number[] = [];
  let calls = 0;
  const r = await retry(
    { attempts: 4, delayMs: exponentialDelay(100), sleep: async (ms) => void delays.push(ms) },
    async (attempt) => {
      calls++;
      if (attempt < 3) throw new CofferError('TRANSIENT', 'flaky');
      return 'ok';
    },
  );
  assert.equal(r, 'ok');
  assert.equal(calls, 3);
  assert.deepEqual(delays, [100, 200]);
});

test(
  'retry: gives up after the attempts with the last failure; ' + 'a non-retryable failure is thrown at once',
  async () => {
    let calls = 0;
    const given: number[] = [];
    await assert.rejects(
      retry(
        { attempts: 3, delayMs: () => 1, sleep: noSleep, onGiveUp: (_e, a) => void given.push(a) },
        async (attempt) => {
          calls++;
          throw new CofferError('TRANSIENT', `attempt ${attempt}`);
        },
      ),
      (e: unknown) => e instanceof CofferError && e.message === 'attempt 3',
    );
    assert.equal(calls, 3);
    assert.deepEqual(given, [3]);
    calls = 0;
    await assert.rejects(
      retry(
        {
          attempts: 5,
          delayMs: () => 1,
          sleep: noSleep,
          retryable: (e) => e instanceof CofferError && e.code === 'TRANSIENT',
        },
        async () => {
          calls++;
          throw new CofferError('IO', 'disk on fire');
        },
      ),
      (e: unknown) => e instanceof CofferError && e.code === 'IO',
    );
    assert.equal(calls, 1);
  },
);

test('retry: an abort during the backoff rejects promptly with CANCELLED and starts no further attempt', async () => {
  const ac = new AbortController();
  let calls = 0;
  const p = retry(
    { attempts: 10, delayMs: () => 3_600_000 },
    async () => {
      calls++;
      setImmediate(() => ac.abort());
      throw new CofferError('TRANSIENT', 'busy');
    },
    { signal: ac.signal },
  );
  await assert.rejects(p, isCancelled);
  assert.equal(calls, 1);
});

test('retry: no attempt after an abort between attempts (the failure is thrown)', async () => {
  const ac = new AbortController();
  let calls = 0;
  await assert.rejects(
    retry(
      { attempts: 10, delayMs: () => 1, sleep: noSleep },
      async () => {
        calls++;
        ac.abort();
        throw new CofferError('TRANSIENT', 'busy');
      },
      { signal: ac.signal },
    ),
    (e: unknown) => e instanceof CofferError && e.code === 'TRANSIENT',
  );
  assert.equal(calls, 1);
});

test('exponentialDelay: doubles up to the cap, jitter stays within its band', () => {
  const d = exponentialDelay(250, 1000);
  assert.deepEqual([1, 2, 3, 4, 5].map(d), [250, 500, 1000, 1000, 1000]);
  const j = exponentialDelay(100, Infinity, 0.5);
  for (let i = 0; i < 100; i++) {
    const v = j(2);
    assert.ok(v >= 100 && v < 300, String(v));
  }
});
