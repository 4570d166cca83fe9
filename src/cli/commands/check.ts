import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import {
  BOOT_DEFAULTS,
  checkFileIndicators,
  requireBootScript,
  checkRestorePoint,
  resolvePointRef,
  type BootCheck,
  type CheckRecord,
} from '../../engine/index.js';
import { CofferError } from '../../shared/index.js';
import { parseInteger, type CommandKit, type CommonOpts } from '../kit/index.js';

type CheckOpts = CommonOpts & {
  timeout: string;
  onFailure?: string;
  record: boolean;
  files?: boolean;
  against?: string;
  boot?: boolean;
  bootMarker: string;
  bootTimeout: string;
  bootMemory?: string;
  bootAgent?: boolean;
  bootScript?: string;
  bootScriptTimeout: string;
  bootForward?: string;
};

/** `coffer check`: is a restore point recoverable? Read-only filesystem checks over NBD, recorded with the point. */
export function checkCommand(program: Command, kit: CommandKit): void {
  kit
    .common(
      program
        .command('check')
        .description(
          'recoverability check: serve a restore point over NBD and check each filesystem read-only ' +
            '(e2fsck -n, fsck.vfat -n, ntfsfix -n, xfs_repair -n); the result is recorded with the point',
        ),
    )
    .argument('<id>', 'restore point id, unique prefix, "latest" or "latest-clean[:VM]"')
    .option('--timeout <seconds>', 'time limit of each filesystem check', '600')
    .option(
      '--on-failure <command>',
      'alert hook: shell command run when the check fails (the record as JSON on stdin; COFFER_POINT_ID, ' +
        'COFFER_CHECK_PROBLEMS in the environment)',
    )
    .option('--no-record', 'do not record the result in the repository')
    .option(
      '--files',
      'file-level ransomware indicators instead: ransom notes, renames to one new extension and high-entropy ' +
        "rewrites of sampled files, against the VM's previous point (exit 51 when found)",
    )
    .option('--against <id>', 'with --files: the restore point to compare with (default the previous one)')
    .option(
      '--boot',
      'also boot the point in QEMU (qemu-system-x86_64, -snapshot, no network, KVM when usable); passes when ' +
        '--boot-marker appears on the serial console',
    )
    .option(
      '--boot-marker <text>',
      'with --boot: the text on the serial console that means booted',
      BOOT_DEFAULTS.marker,
    )
    .option('--boot-timeout <seconds>', 'with --boot: time limit of the boot', String(BOOT_DEFAULTS.timeoutMs / 1000))
    .option('--boot-memory <MiB>', "with --boot: memory of the boot VM (default the stored VM's, at most 4096)")
    .option(
      '--boot-agent',
      'with --boot: passes when the QEMU guest agent (qemu-ga in the guest) answers guest-sync and guest-ping, ' +
        'instead of the marker (a virtio-serial port org.qemu.guest_agent.0)',
    )
    .option(
      '--boot-script <path>',
      'with --boot: after the success signal, run this executable on the host while the VM keeps running; exit 0 ' +
        'passes (COFFER_BOOT_SERIAL_LOG, COFFER_BOOT_QMP_SOCKET, COFFER_BOOT_AGENT_SOCKET, COFFER_BOOT_PORT_<guest ' +
        'port> in its environment)',
    )
    .option(
      '--boot-script-timeout <seconds>',
      'with --boot-script: its time limit (then killed)',
      String(BOOT_DEFAULTS.scriptTimeoutMs / 1000),
    )
    .option(
      '--boot-forward <ports>',
      'with --boot: guest TCP ports (comma-separated) forwarded from free 127.0.0.1 ports; user networking with ' +
        'restrict=on (the guest reaches nothing); default no network',
    )
    .action(async (ref: string, o: CheckOpts) => {
      const logger = kit.logger(o);
      const timeoutMs = parseInteger(o.timeout, '--timeout') * 1000;
      const bootTimeoutMs = parseInteger(o.bootTimeout, '--boot-timeout') * 1000;
      const bootMemoryMB = o.bootMemory !== undefined ? parseInteger(o.bootMemory, '--boot-memory') : undefined;
      if (o.boot && o.files)
        throw new CofferError('USAGE', '--boot and --files are separate checks: run them one by one');
      if (bootTimeoutMs <= 0) throw new CofferError('USAGE', '--boot-timeout must be at least 1 second');
      if (o.boot && o.bootMarker.length === 0) throw new CofferError('USAGE', '--boot-marker must not be empty');
      const bootScriptTimeoutMs = parseInteger(o.bootScriptTimeout, '--boot-script-timeout') * 1000;
      if (bootScriptTimeoutMs <= 0) throw new CofferError('USAGE', '--boot-script-timeout must be at least 1 second');
      if (!o.boot && (o.bootAgent || o.bootScript !== undefined || o.bootForward !== undefined))
        throw new CofferError('USAGE', '--boot-agent, --boot-script and --boot-forward go with --boot');
      const forwards = o.bootForward !== undefined ? parseForwards(o.bootForward) : undefined;
      // before anything starts: a typo must not cost a boot
      const bootScript = o.bootScript !== undefined ? await requireBootScript(o.bootScript) : undefined;
      const repo = await kit.openRepo(o, logger, true);
      const pointId = await resolvePointRef(repo, ref);
      if (o.against !== undefined && !o.files) throw new CofferError('USAGE', '--against goes with --files');
      if (o.files) {
        const against = o.against !== undefined ? await resolvePointRef(repo, o.against) : undefined;
        const r = await checkFileIndicators(repo, kit.useCase, { pointId, against, record: o.record });
        if (o.json) kit.writeJson(r);
        else {
          const eg = (x: string[]) => (x.length ? ` (${x.slice(0, 3).join(', ')})` : '');
          kit.write(
            `restore point ${pointId} against ${r.againstId}: ${r.changes.added} added, ${r.changes.removed} ` +
              `removed, ${r.changes.changed} changed\n` +
              `ransom notes: ${r.ransomNotes.count}${eg(r.ransomNotes.examples)}\n` +
              `renames to one extension: ${r.renames.count} of ${r.renames.total}` +
              `${r.renames.extension ? ` (${r.renames.extension})` : ''}\n` +
              `high-entropy rewrites: ${r.entropyRewrites.count} of ${r.entropyRewrites.sampled} sampled` +
              `${r.entropyRewrites.mtimeKept ? ` (${r.entropyRewrites.mtimeKept} with size and mtime kept)` : ''}\n` +
              `rewritten with size and mtime kept (ctime moved): ${r.ctimeOnly}\n`,
          );
          for (const n of r.notes.slice(0, 20)) kit.write(`note: ${n}\n`);
          kit.write(r.found ? `INDICATORS FOUND: ${r.reasons.join('; ')}\n` : 'no ransomware indicators found\n');
        }
        if (r.found)
          throw new CofferError('INDICATORS_FOUND', `restore point ${pointId}: ${r.reasons.join('; ')}`, {
            details: { pointId, reasons: r.reasons, reported: true },
          });
        return;
      }
      const record = await checkRestorePoint(repo, kit.useCase, {
        pointId,
        timeoutMs,
        record: o.record,
        ...(o.boot
          ? {
              boot: {
                marker: o.bootMarker,
                timeoutMs: bootTimeoutMs,
                ...(bootMemoryMB !== undefined ? { memoryMB: bootMemoryMB } : {}),
                ...(o.bootAgent ? { agent: true } : {}),
                ...(bootScript ? { script: bootScript, scriptTimeoutMs: bootScriptTimeoutMs } : {}),
                ...(forwards ? { forwards } : {}),
              },
            }
          : {}),
        onEvent: (e) => {
          if (o.json || e.type !== 'volume') return;
          const v = e.volume;
          const outcome = v.ok === null ? 'not checked' : v.ok ? 'ok' : 'FAILED';
          kit.write(
            `disk ${v.disk} volume ${v.volume}: ${v.filesystem ?? '-'} ${v.tool ? `(${v.tool}) ` : ''}${outcome}` +
              `${v.note ? `: ${v.note}` : ''}\n`,
          );
        },
        ...(o.onFailure ? { onFailure: (r: CheckRecord) => runAlert(o.onFailure!, r, logger.warn) } : {}),
      });
      if (o.json) kit.writeJson(record);
      else {
        if (record.boot) {
          kit.write(`${bootLine(record.boot)}\n`);
          if (record.boot.script?.output && !record.boot.script.ok)
            kit.write(`boot script output (last lines):\n${record.boot.script.output.replace(/^/gm, '  ')}\n`);
          if (record.boot.ok !== true && record.boot.console)
            kit.write(`serial console (last lines):\n${record.boot.console.replace(/^/gm, '  ')}\n`);
        }
        kit.write(`restore point ${pointId}: ${record.ok ? 'recoverable (check ok)' : 'check FAILED'}\n`);
      }
      if (!record.ok)
        throw new CofferError('CHECK_FAILED', `restore point ${pointId} failed its check: ${record.problems[0]}`, {
          details: { pointId, problems: record.problems, reported: true },
        });
    });
}

/** One line on a boot check: outcome, how, how long. */
export function bootLine(b: BootCheck): string {
  const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
  const accel = b.accel ? b.accel.toUpperCase() : 'not started';
  const how = `${b.firmware.toUpperCase()}, ${accel}, ${b.memoryMB} MiB, ${b.cpus} vCPU`;
  const seen = b.signal === 'agent' ? 'the guest agent answered' : `"${b.marker}" on the serial console`;
  const script = b.script
    ? `; boot script ${b.script.path.split('/').at(-1)} passed in ${secs(b.script.elapsedMs)}`
    : '';
  if (b.ok) return `boot: ok, ${seen} after ${secs(b.elapsedMs)}${script} (${how})`;
  return `boot: ${b.ok === null ? 'not booted' : 'FAILED'} (${how}): ${b.note ?? ''}`;
}

/** `--boot-forward 22,80`: distinct TCP ports 1-65535, at most 16. */
export function parseForwards(s: string): number[] {
  const ports = s.split(',').map((p) => p.trim());
  const out: number[] = [];
  for (const p of ports) {
    const n = /^[0-9]{1,5}$/.test(p) ? Number(p) : Number.NaN;
    if (!(n >= 1 && n <= 65535)) throw new CofferError('USAGE', `--boot-forward: "${p}" is not a TCP port (1-65535)`);
    if (!out.includes(n)) out.push(n);
  }
  if (out.length > 16) throw new CofferError('USAGE', '--boot-forward: at most 16 ports');
  return out;
}

/** Runs the alert command with the record on stdin; its failure is logged, never fatal. */
function runAlert(command: string, record: CheckRecord, warn: (m: string) => void): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['pipe', 'ignore', 'inherit'],
      env: { ...process.env, COFFER_POINT_ID: record.pointId, COFFER_CHECK_PROBLEMS: record.problems.join('\n') },
    });
    child.on('error', (e) => {
      warn(`--on-failure could not run: ${e.message}`);
      resolve();
    });
    child.on('close', (code) => {
      if (code !== 0) warn(`--on-failure exited with ${code}`);
      resolve();
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(record));
  });
}
