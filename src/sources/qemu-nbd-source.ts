import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { BlockSource } from './block-source.js';
import { NbdSource } from './nbd-source.js';

export type QemuFormat = 'qcow2' | 'vhdx' | 'vpc' | 'vmdk' | 'raw';

/**
 * An image file in a format QEMU reads (qcow2, VHDX, VHD) served by a private, read-only qemu-nbd on a Unix socket
 * in a fresh temporary directory, which Coffer starts with a pid file and stops by pid when the source is closed.
 */
export async function openWithQemuNbd(path: string, format: QemuFormat, opts: { bitmap?: string | undefined; logger?: Logger; uri: string }, op?: Op): Promise<BlockSource> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-qemu-nbd-'));
  const socket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'qemu-nbd.pid');
  const args = ['--read-only', `--format=${format}`, '--persistent', '--shared=8', '--fork', `--pid-file=${pidFile}`, `--socket=${socket}`, '--cache=none', '--aio=threads'];
  if (opts.bitmap) args.push(`--bitmap=${opts.bitmap}`);
  args.push(path);
  let stderr = '';
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()).length > 8192 && (stderr = stderr.slice(-8192)));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new CofferError('SOURCE_UNREADABLE', e.code === 'ENOENT' ? 'qemu-nbd is not installed: it is needed to read qcow2, VHDX and VHD images' : `cannot start qemu-nbd: ${e.message}`, { hint: 'install qemu-utils (scripts/setup.sh does)', cause: e })),
    );
    child.on('exit', (c) => resolve(c ?? 1));
  }).catch(async (e) => {
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  if (code !== 0) {
    await rm(dir, { recursive: true, force: true });
    const msg = stderr.trim().split('\n').pop() ?? '';
    throw new CofferError('SOURCE_UNREADABLE', `cannot open ${path} as ${format}: ${msg.replace(/^qemu-nbd: /, '')}`, { details: { source: path, format } });
  }
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  const stop = async () => {
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const source = await NbdSource.open({ path: socket }, { exportName: '', bitmap: opts.bitmap, logger: opts.logger, uri: opts.uri, retries: 0 }, op);
    const close = source.close.bind(source);
    source.close = async () => {
      await close();
      await stop();
    };
    return source;
  } catch (e) {
    await stop();
    throw e;
  }
}
