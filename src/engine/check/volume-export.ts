import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkRange, type BlockReader } from '../../fs/index.js';
import { NbdServer, type BlockDevice } from '../../nbd/index.js';
import { CofferError, type Op } from '../../shared/index.js';
import { runTool } from './fsck-tools.js';

/** A volume (partition, logical volume) of a restore point as a read-only NBD device. */
class ReaderDevice implements BlockDevice {
  readonly writable = false;
  readonly sizeBytes: number;
  constructor(private readonly reader: BlockReader) {
    this.sizeBytes = reader.sizeBytes;
  }
  read(offset: number, length: number, op?: Op): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    return this.reader.read(offset, length, op);
  }
}

const READY_TIMEOUT_MS = 15_000;

/**
 * Serves one volume over NBD (Coffer's own server, on a Unix socket in a private temporary directory) and attaches it
 * read-only as a file with nbdfuse, so unmodified tools (e2fsck, xfs_repair ...) read the restore point in place
 * (instant recovery, nothing restored). `use` gets the file's path; everything is torn down after it, by pid.
 */
export async function withVolumeFile<T>(volume: BlockReader, use: (path: string) => Promise<T>, op: Op): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-check-'));
  const socket = join(dir, 'nbd.sock');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const server = new NbdServer(new ReaderDevice(volume), { description: 'coffer check' });
  let fuse: ChildProcess | undefined;
  let fuseExit: Promise<void> | undefined;
  let fuseError = '';
  try {
    await server.listenPath(socket);
    fuse = spawn('nbdfuse', ['-r', mnt, `nbd+unix:///?socket=${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    fuse.stderr?.on('data', (d: Buffer) => (fuseError = (fuseError + d.toString()).slice(-2000)));
    let started = true;
    fuseExit = new Promise<void>((resolve) => {
      fuse!.on('error', () => {
        started = false;
        resolve();
      });
      fuse!.on('close', () => resolve());
    });
    const file = join(mnt, 'nbd');
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exited = false;
    void fuseExit.then(() => (exited = true));
    while (!existsSync(file)) {
      if (exited || !started)
        throw new CofferError(
          'NOT_AVAILABLE',
          `nbdfuse could not attach the NBD export${started ? `: ${fuseError.trim()}` : ' (is nbdfuse installed?)'}`,
        );
      if (Date.now() > deadline) throw new CofferError('NOT_AVAILABLE', 'nbdfuse did not attach the NBD export');
      op.signal?.throwIfAborted();
      await sleep(50);
    }
    return await use(file);
  } finally {
    if (fuse?.pid !== undefined && fuse.exitCode === null) {
      await runTool('fusermount3', ['-u', mnt], { timeoutMs: 10_000 });
      const gone = await Promise.race([fuseExit!.then(() => true), sleep(5_000).then(() => false)]);
      if (!gone) {
        fuse.kill('SIGKILL');
        await runTool('fusermount3', ['-u', '-z', mnt], { timeoutMs: 10_000 });
        await fuseExit;
      }
    }
    await server.close();
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
