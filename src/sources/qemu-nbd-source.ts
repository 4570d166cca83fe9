import { spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { BlockSource } from './block-source.js';
import { NbdSource } from './nbd-source.js';
import type { QemuFormat } from './container-magic.js';

export type { QemuFormat } from './container-magic.js';

/**
 * An image file in a format QEMU reads (qcow2, VHDX, VHD, VDI, QED, Parallels, ...: container-magic.ts) served by a
 * private, read-only qemu-nbd on a Unix socket in a fresh temporary directory, which Coffer starts with a pid file and
 * stops by pid when the source is closed.
 */
export async function openWithQemuNbd(
  path: string,
  format: QemuFormat,
  opts: { bitmap?: string | undefined; logger?: Logger; uri: string },
  op?: Op,
): Promise<BlockSource> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-qemu-nbd-'));
  const socket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'qemu-nbd.pid');
  // Our own child (no --fork): we reap it, so its exit is seen at once (a forked daemon would be reparented and,
  // under an init that does not reap, linger as a zombie that still answers kill(pid, 0)).
  const args = [
    '--read-only',
    `--format=${format}`,
    '--persistent',
    '--shared=8',
    `--pid-file=${pidFile}`,
    `--socket=${socket}`,
    '--cache=none',
    '--aio=threads',
  ];
  if (opts.bitmap) args.push(`--bitmap=${opts.bitmap}`);
  args.push(path);
  let stderr = '';
  const child = spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 8192) stderr = stderr.slice(-8192);
  });
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', (code) => {
      exited = code;
      resolve();
    });
  });
  const spawnError = new Promise<never>((_, reject) =>
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new CofferError(
          'SOURCE_UNREADABLE',
          e.code === 'ENOENT'
            ? `qemu-nbd is not installed: it is needed to read ${format} images`
            : `cannot start qemu-nbd: ${e.message}`,
          { hint: 'install qemu-utils (scripts/setup.sh does)', cause: e },
        ),
      ),
    ),
  );
  spawnError.catch(() => undefined);
  const stop = async () => {
    if (exited === undefined && child.pid) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Wait for the socket: qemu-nbd creates it once the image is open and checked.
    const deadline = Date.now() + 30_000;
    for (;;) {
      op?.signal?.throwIfAborted();
      if (exited !== undefined) {
        const msg = stderr.trim().split('\n').pop() ?? '';
        throw new CofferError(
          'SOURCE_UNREADABLE',
          `cannot open ${path} as ${format}: ${msg.replace(/^qemu-nbd: /, '') || `qemu-nbd exited with ${exited}`}`,
          { details: { source: path, format } },
        );
      }
      if (await exists(socket)) break;
      if (Date.now() > deadline)
        throw new CofferError('SOURCE_UNREADABLE', `qemu-nbd did not open ${path} within 30 s`);
      await Promise.race([new Promise((r) => setTimeout(r, 10)), spawnError]);
    }
    let source: NbdSource;
    try {
      // the socket file exists from bind(), a moment before listen(): a refused connection while qemu-nbd runs is
      // tried again until the deadline (seen in CI as "connection refused" on a busy machine)
      for (;;) {
        try {
          source = await NbdSource.open(
            { path: socket },
            { exportName: '', bitmap: opts.bitmap, logger: opts.logger, uri: opts.uri, retries: 0 },
            op,
          );
          break;
        } catch (e) {
          const refused = e instanceof CofferError && e.details['errno'] === 'ECONNREFUSED';
          if (!refused || exited !== undefined || Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } catch (e) {
      // qemu-nbd may create its socket and then fail to open the image: its own words, not "read ECONNRESET"
      await Promise.race([exit, new Promise((r) => setTimeout(r, 1000))]);
      const msg = stderr
        .trim()
        .split('\n')
        .pop()
        ?.replace(/^qemu-nbd: /, '');
      if (msg)
        throw new CofferError('SOURCE_UNREADABLE', `cannot open ${path} as ${format}: ${msg}`, {
          details: { source: path, format },
          cause: e,
        });
      throw e;
    }
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

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
