import type { Manifest } from '../../format/index.js';
import type { Repository } from '../../repository/index.js';
import { CofferError, TaskWindow, type Op } from '../../shared/index.js';
import type { BootScriptResult } from '../check/index.js';
import { latestClean, pointState, type PointStatus } from '../signals/index.js';

export interface PointWithStatus {
  manifest: Manifest;
  status: PointStatus;
}

/** The state of each restore point (suspicious / failed / verified / clean), from its manifest and record names. */
export async function pointStatuses(repo: Repository, points: Manifest[], op?: Op): Promise<PointWithStatus[]> {
  const out: PointWithStatus[] = new Array(points.length);
  // 8 points at a time (24 listings in flight): one point after the other, `list` of a repository on a distant
  // object store waited three round trips per point (issue 19)
  const window = new TaskWindow(8);
  try {
    for (const [i, m] of points.entries()) {
      await window.run(async () => {
        const [verification, check, indicators] = await Promise.all([
          repo.lastVerification(m.id, op),
          repo.lastCheck(m.id, op),
          repo.lastIndicators(m.id, op),
        ]);
        out[i] = { manifest: m, status: pointState(m, verification, check, indicators ? { indicators } : {}) };
      });
    }
    await window.drain();
  } catch (e) {
    await window.settle();
    throw e;
  }
  return out;
}

/** What `list`, `show`, the catalog and the API say about the boot check of a point's newest check record (§8.1). */
export interface BootSummary {
  ok: boolean | null;
  /** the success signal waited for (version 1 records: marker) */
  signal: 'marker' | 'agent';
  marker: string;
  /** how the wait ended (marker, agent, timeout, exit, agent-error, not-run), null when the record has none */
  ended: string | null;
  elapsedMs: number;
  accel: string | null;
  note: string | null;
  /** the boot script's result (as the record keeps it, without its time limit), or null when none ran */
  script: Omit<BootScriptResult, 'timeoutMs'> | null;
}

/**
 * The boot part of the newest check record of a point, or null when that record has none (a check without
 * `--boot`, a record written before boot checks, an unreadable record: records describe, nothing depends on them).
 */
export async function lastBootCheck(repo: Repository, pointId: string, op?: Op): Promise<BootSummary | null> {
  const rec = (await repo.lastCheckRecord(pointId, op)) as { boot?: unknown } | undefined;
  return bootSummary(rec?.boot);
}

/** A check record's `boot` (versions 1 and 2, untrusted JSON) as a bounded summary, or null. */
export function bootSummary(boot: unknown): BootSummary | null {
  const b = boot as Record<string, unknown> | undefined;
  if (!b || typeof b !== 'object' || (b['version'] !== 1 && b['version'] !== 2)) return null;
  const str = (v: unknown, max = 1000) => (typeof v === 'string' ? v.slice(0, max) : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const s = b['script'] as Record<string, unknown> | undefined;
  return {
    ok: typeof b['ok'] === 'boolean' ? b['ok'] : null,
    signal: b['signal'] === 'agent' ? 'agent' : 'marker',
    marker: str(b['marker']) ?? '',
    ended: str(b['ended'], 32),
    elapsedMs: num(b['elapsedMs']) ?? 0,
    accel: str(b['accel']),
    note: str(b['note']),
    script:
      s && typeof s === 'object'
        ? {
            path: str(s['path']) ?? '',
            ok: s['ok'] === true,
            exitCode: num(s['exitCode']),
            signal: str(s['signal'], 32),
            timedOut: s['timedOut'] === true,
            elapsedMs: num(s['elapsedMs']) ?? 0,
            output: str(s['output'], 2000) ?? '',
          }
        : null,
  };
}

/** The status of one restore point. */
export async function statusOf(repo: Repository, m: Manifest, op?: Op): Promise<PointStatus> {
  return (await pointStatuses(repo, [m], op))[0]!.status;
}

/**
 * Resolves a restore point reference: what `Repository.resolvePoint` takes (id, unique prefix, `latest`), or
 * `latest-clean` / `latest-clean:VM` (the VM's last clean point, DESIGN.md §Ransomware signals). `latest-clean`
 * without a VM needs a repository holding one VM (or `vm`).
 */
export async function resolvePointRef(
  repo: Repository,
  ref: string,
  opts: { vm?: string | undefined; requireCheck?: boolean } & Op = {},
): Promise<string> {
  const m = /^latest-clean(?::(.+))?$/.exec(ref);
  if (!m) return repo.resolvePoint(ref, opts);
  const all = await repo.listPoints(opts);
  let vm = m[1] ?? opts.vm;
  if (vm === undefined) {
    const vms = [...new Set(all.map((p) => p.vm.name))];
    if (vms.length > 1)
      throw new CofferError('AMBIGUOUS', `the repository holds ${vms.length} VMs: say which (latest-clean:VM)`, {
        details: { vms },
      });
    vm = vms[0];
  }
  const points = await pointStatuses(
    repo,
    all.filter((p) => p.vm.name === vm),
    opts,
  );
  const clean = latestClean(points, opts.requireCheck ? { requireCheck: true } : {});
  if (!clean) throw new CofferError('NOT_FOUND', `VM ${vm ?? '-'} has no clean restore point`);
  return clean.manifest.id;
}
