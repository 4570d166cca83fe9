import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { applyMutation, fuzzTargets, judge, mutationArb } from './helpers/fuzz-targets.js';

/**
 * Bounded property-based fuzzing of every parser of untrusted input (issue 21; harness in helpers/fuzz-targets.ts):
 * the unmutated seeds (made by the real tools) parse, and for mutated seeds with fixed fast-check seeds every run ends
 * with a result or a CofferError of an allowed code, within its work budget. bench/fuzz-campaign.mjs runs the same
 * properties for longer.
 */

const RUNS = Number(process.env.COFFER_FUZZ_RUNS ?? 60);
const T = { timeout: 120_000 };

describe('fuzzing the parsers of untrusted input (fixed seeds)', () => {
  const work = mkdtempSync(join(tmpdir(), 'coffer-fuzz-'));
  const targets = fuzzTargets();
  after(async () => {
    for (const t of targets) await t.dispose?.();
    rmSync(work, { recursive: true, force: true });
  });

  for (const t of targets) {
    const skip = t.needsRoot && process.getuid?.() !== 0 ? 'needs root (loop devices for the seeds)' : false;
    test(`${t.name}: seeds parse; ${RUNS} mutations end in a result or a coded error, within budget`, {
      ...T,
      skip,
    }, async () => {
      const seeds = await t.seeds(work);
      assert.ok(seeds.length > 0);
      for (const s of seeds)
        assert.deepEqual(
          await judge(t, s, work),
          { kind: 'ok', detail: '' },
          `${t.name}: a seed from the real tool must parse`,
        );
      await fc.assert(
        fc.asyncProperty(mutationArb(seeds.length), async (m) => {
          const v = await judge(t, applyMutation(seeds, m), work);
          assert.ok(v.kind === 'ok' || v.kind === 'coded', `${t.name}: ${v.kind}: ${v.detail}`);
        }),
        { numRuns: RUNS, seed: 0x21c0ffe },
      );
    });
  }
});
