import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { isIP } from 'node:net';
import { NbdClient } from '../../nbd/index.js';
import { NbdSource } from '../../sources/index.js';
import { CofferError, silentLogger, type Logger, type Op } from '../../shared/index.js';
import type { DiskReader, DiskTransport } from '../disk-transport.js';
import type { DiskWriter } from './hotadd-transport.js';
import type { VmDisk } from '../vm-model.js';
import type { MoRef } from '../xml.js';

export interface VddkOptions {
  /** VDDK's install directory (vmware-vix-disklib-distrib), passed as libdir=. */
  libdir: string;
  /** vCenter host and port (for server= and the thumbprint). */
  host: string;
  port: number;
  user: string;
  password: string;
  /** The VM and the backup's snapshot (vm=moref=..., snapshot=...); set by prepare() once the snapshot exists. */
  vm?: MoRef;
  snapshot?: MoRef;
  /**
   * Write mode (quick rollback, ADR 0022): the disks of a powered-off VM itself, no snapshot, nbdkit without -r; opened
   * with openWriter(). Reading a snapshot (backups) never uses it.
   */
  writable?: boolean;
  /** nbdkit binary (default "nbdkit" on PATH). */
  nbdkit?: string;
  /** How long nbdkit may take to listen (default 60 s). */
  startTimeoutMs?: number;
  logger?: Logger | undefined;
}

/** VDDK's connection settings for a vsphere:// URL: credentials from the URL, else COFFER_VSPHERE_USER/PASSWORD. */
export function vddkConnection(
  url: { host: string; port: number; user?: string | undefined; password?: string | undefined },
  env: Record<string, string | undefined>,
): Pick<VddkOptions, 'host' | 'port' | 'user' | 'password' | 'nbdkit'> {
  return {
    host: url.host,
    port: url.port,
    user: url.user ?? env['COFFER_VSPHERE_USER'] ?? '',
    password: url.password ?? env['COFFER_VSPHERE_PASSWORD'] ?? '',
    nbdkit: env['COFFER_NBDKIT'],
  };
}

/** SHA-1 thumbprint of a server's certificate as VDDK wants it (AA:BB:...). */
export function sha1Thumbprint(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false, servername: isIP(host) ? undefined : host });
    s.setTimeout(30_000, () => s.destroy(new Error('timed out')));
    s.once('secureConnect', () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(createHash('sha1').update(raw).digest('hex').toUpperCase().match(/../g)!.join(':'));
    });
    s.once('error', (e) =>
      reject(
        new CofferError('VSPHERE_TRANSPORT', `VDDK: cannot read the certificate of ${host}:${port}: ${e.message}`, {
          cause: e,
        }),
      ),
    );
  });
}

/**
 * VDDK NBD/NBDSSL (DESIGN.md §vSphere, transports): one `nbdkit vddk` per disk, started and stopped by Coffer on a
 * private Unix socket (a 0700 temp dir, the password in a 0600 file there: password=+FILE), read with Coffer's NBD
 * client. Each export is opened for exactly one disk (file=[ds] path of the snapshot's disk), so exports are matched
 * to disks by file, never by size. VDDK itself is VMware's and not redistributable: --vddk-libdir names it.
 */
export class VddkTransport implements DiskTransport {
  readonly name = 'nbd';
  private thumbprint: string | undefined;
  private readonly logger: Logger;
  constructor(private readonly o: VddkOptions) {
    this.logger = o.logger ?? silentLogger;
  }

  prepare(vm: MoRef, snapshot: MoRef): void {
    this.o.vm = vm;
    this.o.snapshot = snapshot;
  }

  /** Starts one nbdkit vddk for the disk on a private socket; resolves once it accepts connections. */
  private async serve(
    disk: VmDisk,
    op: Op,
  ): Promise<{ sock: string; pid: number | undefined; stop: () => Promise<void> }> {
    const writable = this.o.writable === true;
    if (!this.o.vm || (!writable && !this.o.snapshot))
      throw new CofferError('INTERNAL', 'VDDK transport used before the snapshot exists');
    this.thumbprint ??= await sha1Thumbprint(this.o.host, this.o.port);
    const dir = await mkdtemp(join(tmpdir(), 'coffer-vddk-'));
    await chmod(dir, 0o700);
    const pwFile = join(dir, 'password');
    await writeFile(pwFile, this.o.password, { mode: 0o600 });
    const sock = join(dir, 'nbd.sock');
    // nbdkit writes its PID file once it accepts connections; the socket file exists from bind(), before listen():
    // waiting for the socket alone raced ("connection refused")
    const pidFile = join(dir, 'nbdkit.pid');
    const args = [
      '-U',
      sock,
      '-P',
      pidFile,
      ...(writable ? [] : ['-r']),
      '-f',
      '--exit-with-parent',
      'vddk',
      `libdir=${this.o.libdir}`,
      `server=${this.o.host}`,
      ...(this.o.port !== 443 ? [`port=${this.o.port}`] : []),
      `user=${this.o.user}`,
      `password=+${pwFile}`,
      `thumbprint=${this.thumbprint}`,
      `vm=moref=${this.o.vm.value}`,
      ...(writable ? [] : [`snapshot=${this.o.snapshot!.value}`]),
      'transports=nbdssl:nbd',
      `file=${disk.fileName}`,
    ];
    let child: ChildProcess;
    let stderr = '';
    let exited: number | null | undefined;
    const cleanup = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise<void>((r) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            r();
          }, 5000);
          child.once('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
      await rm(dir, { recursive: true, force: true });
    };
    try {
      child = spawn(this.o.nbdkit ?? 'nbdkit', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw new CofferError('VSPHERE_TRANSPORT', `VDDK: cannot start nbdkit: ${(e as Error).message}`, {
        hint: 'install nbdkit with its vddk plugin',
      });
    }
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4000)));
    const spawnError = new Promise<Error>((r) => child.once('error', r));
    child.once('exit', (code) => (exited = code));
    try {
      const deadline = Date.now() + (this.o.startTimeoutMs ?? 60_000);
      for (;;) {
        op.signal?.throwIfAborted();
        if (existsSync(pidFile) && existsSync(sock)) break;
        const err = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
        if (err)
          throw new CofferError('VSPHERE_TRANSPORT', `VDDK: cannot start nbdkit: ${err.message}`, {
            hint: 'install nbdkit with its vddk plugin (not in Debian) and VMware VDDK',
          });
        if (exited !== undefined) {
          throw new CofferError(
            'VSPHERE_TRANSPORT',
            `VDDK: nbdkit for ${disk.fileName} exited (${exited}) before ` +
              `serving: ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`,
            { hint: 'check --vddk-libdir, the credentials and the thumbprint' },
          );
        }
        if (Date.now() > deadline)
          throw new CofferError(
            'VSPHERE_TRANSPORT',
            `VDDK: nbdkit for ${disk.fileName} did not listen ` +
              `within ${Math.round((this.o.startTimeoutMs ?? 60_000) / 1000)} s`,
          );
      }
      return { sock, pid: child.pid, stop: cleanup };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  async open(disk: VmDisk, _index: number, _ctx: unknown, op: Op = {}): Promise<DiskReader> {
    const { sock, pid, stop } = await this.serve(disk, op);
    try {
      const src = await NbdSource.open({ path: sock }, { exportName: '', logger: this.o.logger }, op);
      if (src.sizeBytes !== disk.capacityBytes) {
        await src.close();
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `VDDK export of ${disk.fileName} has ${src.sizeBytes} bytes, the disk ${disk.capacityBytes}`,
        );
      }
      this.logger.info(`VDDK: ${disk.fileName} served by nbdkit pid ${pid}`);
      return {
        description: `vddk:${disk.fileName}`,
        read: (o, l, into, op2) => src.read(o, l, into, op2),
        close: async () => {
          await src.close().catch(() => undefined);
          await stop();
        },
      };
    } catch (e) {
      await stop();
      throw e;
    }
  }

  /**
   * Write mode: the powered-off VM's own disk opened read-write through VDDK (NBD/NBDSSL), for quick rollback. The
   * writes are flushed before close() resolves; a write VDDK refuses fails with its NBD error, nothing retried.
   */
  async openWriter(disk: VmDisk, op: Op = {}): Promise<DiskWriter> {
    if (!this.o.writable) throw new CofferError('INTERNAL', 'VDDK transport opened for writing without writable');
    const { sock, pid, stop } = await this.serve(disk, op);
    let client: NbdClient | undefined;
    try {
      client = await NbdClient.connect({ path: sock }, { exportName: '', timeoutMs: 60_000, signal: op.signal });
      if (client.sizeBytes !== disk.capacityBytes)
        throw new CofferError(
          'VSPHERE_DISK_LAYOUT',
          `VDDK export of ${disk.fileName} has ${client.sizeBytes} bytes, the disk ${disk.capacityBytes}`,
        );
      if (client.readOnly)
        throw new CofferError('TARGET_UNWRITABLE', `VDDK opened ${disk.fileName} read-only`, {
          hint: 'the VM must be powered off and without snapshots, and the user needs VirtualMachine.Config privileges',
        });
      this.logger.info(`VDDK: ${disk.fileName} served read-write by nbdkit pid ${pid}`);
      const c = client;
      return {
        description: `vddk:${disk.fileName}`,
        read: (o, l, into, op2) => c.read(o, l, into, op2),
        write: (o, data, op2) => c.write(o, data, op2),
        close: async () => {
          try {
            await c.flush();
          } finally {
            await c.close().catch(() => undefined);
            await stop();
          }
        },
      };
    } catch (e) {
      await client?.close().catch(() => undefined);
      await stop();
      throw e;
    }
  }
}
