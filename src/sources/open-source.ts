import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { BlockSource } from './block-source.js';
import { FileSource, openImageFile } from './file-source.js';
import { NbdSource, parseNbdUri } from './nbd-source.js';
import { openWithQemuNbd, type QemuFormat } from './qemu-nbd-source.js';
import { VmdkSource } from './vmdk/vmdk-source.js';

export type ImageFormat = 'raw' | 'vmdk' | QemuFormat;

export interface OpenSourceOptions extends Op {
  logger?: Logger;
  /** NBD request timeout (ms). */
  timeoutMs?: number;
}

/**
 * Opens a SOURCE argument:
 * - a path or file:///abs/path[?format=raw|qcow2|vmdk|vhdx|vhd][&bitmap=NAME]: raw images and block devices are read
 *   directly, VMDK natively, qcow2/VHDX/VHD through a private qemu-nbd (bitmap: a persistent qcow2 dirty bitmap);
 * - nbd://HOST[:PORT]/[EXPORT][?bitmap=NAME] or nbd+unix:///[EXPORT]?socket=PATH[&bitmap=NAME];
 * - nbds://... (NBD over TLS, the server's certificate verified; &tls-ca=PEM for a private CA).
 */
export async function openSource(spec: string, opts: OpenSourceOptions = {}): Promise<BlockSource> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === 'nbd' || scheme === 'nbd+unix' || scheme === 'nbds' || scheme === 'nbds+unix') {
    const u = parseNbdUri(spec);
    let tls: { ca?: Buffer } | undefined;
    if (u.tls) {
      tls = {};
      if (u.tlsCa) {
        try {
          tls.ca = await readFile(u.tlsCa);
        } catch (e) {
          throw new CofferError('USAGE', `cannot read the TLS CA certificate ${u.tlsCa}: ${(e as Error).message}`);
        }
      }
    } else if (u.tlsCa) throw new CofferError('USAGE', '?tls-ca= needs nbds:// (NBD over TLS)');
    return NbdSource.open(
      u.address,
      { exportName: u.exportName, bitmap: u.bitmap, logger: opts.logger, timeoutMs: opts.timeoutMs, tls },
      opts,
    );
  }
  if (scheme !== undefined && scheme !== 'file') {
    throw new CofferError('USAGE', `unsupported source ${scheme}:// (supported: paths, file://, nbd://, nbd+unix://)`);
  }
  let filePath: string;
  let format: string | null = null;
  let bitmap: string | undefined;
  if (scheme === 'file') {
    let url: URL;
    try {
      url = new URL(spec);
      filePath = fileURLToPath(new URL(url.origin === 'null' ? `file://${url.pathname}` : url.href.split('?')[0]!));
    } catch (e) {
      throw new CofferError('USAGE', `invalid file URL ${spec}: ${(e as Error).message}`);
    }
    format = url.searchParams.get('format');
    bitmap = url.searchParams.get('bitmap') ?? undefined;
  } else {
    filePath = path.resolve(spec);
  }
  const fmt = (format ?? (await sniffFormat(filePath))) as ImageFormat;
  const uri = `file://${filePath}`;
  if (bitmap && fmt !== 'qcow2') throw new CofferError('USAGE', `?bitmap= needs a qcow2 image (${filePath} is ${fmt})`);
  switch (fmt) {
    case 'raw':
      return FileSource.open(filePath);
    case 'vmdk':
      return VmdkSource.open(filePath);
    case 'qcow2':
    case 'vhdx':
    case 'vpc':
      return openWithQemuNbd(
        filePath,
        fmt,
        { bitmap, logger: opts.logger, uri: bitmap ? `${uri}?bitmap=${encodeURIComponent(bitmap)}` : uri },
        opts,
      );
    default:
      throw new CofferError('USAGE', `unknown image format ${JSON.stringify(format)} (raw, vmdk, qcow2, vhdx, vhd)`);
  }
}

/** Recognises an image by its magic (never by its name alone): qcow2, VHDX, VHD (dynamic or fixed), VMDK, else raw. */
export async function sniffFormat(filePath: string): Promise<ImageFormat> {
  let fh;
  try {
    fh = await openImageFile(filePath);
  } catch {
    return 'raw'; // FileSource.open reports the error precisely
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return 'raw';
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    const h = head.subarray(0, bytesRead);
    if (h.length >= 4 && h.readUInt32BE(0) === 0x514649fb) return 'qcow2';
    if (h.toString('latin1', 0, 8) === 'vhdxfile') return 'vhdx';
    if (h.toString('latin1', 0, 8) === 'conectix') return 'vpc';
    if (h.toString('latin1', 0, 4) === 'KDMV' || h.toString('latin1', 0, 4) === 'COWD') return 'vmdk';
    if (/^\s*#\s*Disk DescriptorFile/i.test(h.toString('latin1', 0, 64))) return 'vmdk';
    if (st.size >= 512 && st.size % 512 === 0) {
      const foot = Buffer.alloc(512);
      await fh.read(foot, 0, 512, st.size - 512);
      if (foot.toString('latin1', 0, 8) === 'conectix') return 'vpc';
    }
    return 'raw';
  } finally {
    await fh.close();
  }
}
