import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { BlockSource } from './block-source.js';
import { FileSource, openImageFile } from './file-source.js';
import { NbdSource, parseNbdUri } from './nbd-source.js';
import { openWithQemuNbd } from './qemu-nbd-source.js';
import { VmdkSource } from './vmdk/vmdk-source.js';
import {
  HEAD_BYTES,
  QEMU_FORMATS,
  detectContainer,
  refusedError,
  type Detected,
  type ImageFormat,
} from './container-magic.js';

export type { ImageFormat } from './container-magic.js';

export interface OpenSourceOptions extends Op {
  logger?: Logger;
  /** NBD request timeout (ms). */
  timeoutMs?: number;
  /** a local image's format, given instead of detected ('raw': the bytes as they are, whatever their magic) */
  format?: ImageFormat | undefined;
}

/**
 * Opens a SOURCE argument:
 * - a path or file:///abs/path[?format=FORMAT][&bitmap=NAME]: the format is detected by its magic (container-magic.ts)
 *   unless given; raw images and block devices are read directly, VMDK natively, qcow2, VHDX, VHD, VDI, QED,
 *   Parallels and the other formats qemu reads through a private qemu-nbd (bitmap: a persistent qcow2 dirty bitmap);
 *   encrypted and compressed containers are refused (SOURCE_UNSUPPORTED) unless the format is given as raw;
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
  if (format !== null && format !== 'vhd' && !KNOWN.has(format))
    throw new CofferError('USAGE', `unknown image format ${JSON.stringify(format)} (${[...KNOWN].join(', ')})`);
  const given = format === 'vhd' ? 'vpc' : ((format as ImageFormat | null) ?? opts.format);
  if (opts.format && format !== null && opts.format !== given)
    throw new CofferError('USAGE', `--format ${opts.format} contradicts ?format=${format} in ${spec}`);
  let fmt: ImageFormat;
  if (given) fmt = given;
  else {
    const d = await sniff(filePath);
    if ('refused' in d) throw refusedError(filePath, d);
    fmt = d.format;
  }
  const uri = `file://${filePath}`;
  if (bitmap && fmt !== 'qcow2') throw new CofferError('USAGE', `?bitmap= needs a qcow2 image (${filePath} is ${fmt})`);
  switch (fmt) {
    case 'raw':
      return FileSource.open(filePath);
    case 'vmdk':
      return VmdkSource.open(filePath);
    default:
      return openWithQemuNbd(
        filePath,
        fmt,
        { bitmap, logger: opts.logger, uri: bitmap ? `${uri}?bitmap=${encodeURIComponent(bitmap)}` : uri },
        opts,
      );
  }
}

const KNOWN = new Set<string>(['raw', 'vmdk', ...QEMU_FORMATS]);

/** The format of an image by its magic: raw when nothing is recognised (or the path is not a regular file). */
export async function sniffFormat(filePath: string): Promise<ImageFormat> {
  const d = await sniff(filePath);
  return 'refused' in d ? 'raw' : d.format;
}

/** Recognises an image by its magic (never by its name alone): container-magic.ts. */
async function sniff(filePath: string): Promise<Detected> {
  let fh;
  try {
    fh = await openImageFile(filePath);
  } catch {
    return { format: 'raw' }; // FileSource.open reports the error precisely
  }
  try {
    const st = await fh.stat();
    // files and block devices alike (a qcow2 or LUKS volume on an LV is a container too); anything else: FileSource
    // says
    if (!st.isFile() && !st.isBlockDevice()) return { format: 'raw' };
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
    let foot: Buffer | undefined;
    if (st.isFile() && st.size >= 512) {
      foot = Buffer.alloc(512);
      await fh.read(foot, 0, 512, st.size - 512);
    }
    return detectContainer(head.subarray(0, bytesRead), foot);
  } finally {
    await fh.close();
  }
}
