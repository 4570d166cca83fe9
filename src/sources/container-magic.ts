import { CofferError } from '../shared/index.js';

/**
 * Disk image containers recognised by their magic (never by their name): docs/DESIGN.md §Image formats.
 * - read natively: raw, VMDK (sparse, streamOptimized, descriptor);
 * - read through a private qemu-nbd (the formats qemu-img lists that hold one disk): qcow2, qcow (v1), VHDX,
 *   VHD (vpc), VDI, QED, Parallels, Bochs, cloop, DMG;
 * - refused with SOURCE_UNSUPPORTED: encrypted containers (LUKS, qcow/qcow2 with AES or LUKS encryption: Coffer has
 *   no key and would back up ciphertext) and compressed files (gzip, xz, zstd, bzip2: not a disk image).
 * `--format raw` (or file://...?format=raw) skips detection and takes the bytes as they are.
 */

export type QemuFormat =
  | 'qcow2'
  | 'qcow'
  | 'vhdx'
  | 'vpc'
  | 'vmdk'
  | 'raw'
  | 'vdi'
  | 'qed'
  | 'parallels'
  | 'bochs'
  | 'cloop'
  | 'dmg';
export type ImageFormat = 'raw' | 'vmdk' | QemuFormat;

/** Formats handed to qemu-nbd. */
export const QEMU_FORMATS: readonly QemuFormat[] = [
  'qcow2',
  'qcow',
  'vhdx',
  'vpc',
  'vdi',
  'qed',
  'parallels',
  'bochs',
  'cloop',
  'dmg',
];

export type Detected = { format: ImageFormat } | { refused: string; encrypted: boolean };

/** Bytes sniffFormat reads from the start of a file (the VDI magic sits at 0x40, all others earlier). */
export const HEAD_BYTES = 512;

/**
 * What a file is, from its first HEAD_BYTES bytes (fewer if the file is shorter) and its last 512 bytes (`foot`,
 * undefined when the file is shorter than 512 bytes). Pure, total: any input gives an answer, never an exception.
 */
export function detectContainer(h: Buffer, foot: Buffer | undefined): Detected {
  const ascii = (at: number, len: number) => (h.length >= at + len ? h.toString('latin1', at, at + len) : '');
  const u32be = (at: number) => (h.length >= at + 4 ? h.readUInt32BE(at) : -1);
  if (u32be(0) === 0x514649fb) {
    const version = u32be(4);
    if (version === 1) {
      const crypt = u32be(36);
      if (crypt !== 0 && crypt !== -1)
        return { refused: 'a qcow (version 1) image with AES encryption', encrypted: true };
      return { format: 'qcow' };
    }
    const crypt = u32be(32);
    if (crypt === 1) return { refused: 'a qcow2 image with AES encryption', encrypted: true };
    if (crypt === 2) return { refused: 'a qcow2 image with LUKS encryption', encrypted: true };
    if (crypt !== 0 && crypt !== -1)
      return { refused: `a qcow2 image with unknown encryption method ${crypt}`, encrypted: true };
    return { format: 'qcow2' };
  }
  if (ascii(0, 6) === 'LUKS\xba\xbe')
    return { refused: `a LUKS${h.length >= 8 ? h.readUInt16BE(6) : ''} encrypted volume`, encrypted: true };
  if (ascii(0, 8) === 'vhdxfile') return { format: 'vhdx' };
  if (ascii(0, 8) === 'conectix') return { format: 'vpc' };
  if (ascii(0, 4) === 'KDMV' || ascii(0, 4) === 'COWD') return { format: 'vmdk' };
  if (/^\s*#\s*Disk DescriptorFile/i.test(h.toString('latin1', 0, Math.min(64, h.length)))) return { format: 'vmdk' };
  if (h.length >= 0x44 && h.readUInt32LE(0x40) === 0xbeda107f) return { format: 'vdi' };
  if (ascii(0, 4) === 'QED\0') return { format: 'qed' };
  if (ascii(0, 16) === 'WithoutFreeSpace' || ascii(0, 16) === 'WithouFreSpacExt') return { format: 'parallels' };
  if (ascii(0, 22) === 'Bochs Virtual HD Image') return { format: 'bochs' };
  if (/^#!\/bin\/sh\n#V2\.0 Format\n/.test(h.toString('latin1', 0, Math.min(64, h.length)))) return { format: 'cloop' };
  if (h.length >= 3 && h[0] === 0x1f && h[1] === 0x8b && h[2] === 0x08)
    return { refused: 'a gzip-compressed file, not a disk image', encrypted: false };
  if (ascii(0, 6) === '\xfd7zXZ\0') return { refused: 'an xz-compressed file, not a disk image', encrypted: false };
  if (u32be(0) === 0x28b52ffd) return { refused: 'a zstd-compressed file, not a disk image', encrypted: false };
  if (/^BZh[1-9]1AY&SY/.test(ascii(0, 10)))
    return { refused: 'a bzip2-compressed file, not a disk image', encrypted: false };
  if (foot && foot.length >= 8) {
    if (foot.toString('latin1', 0, 8) === 'conectix') return { format: 'vpc' };
    if (foot.toString('latin1', 0, 4) === 'koly') return { format: 'dmg' };
  }
  return { format: 'raw' };
}

/** The error for a refused container. */
export function refusedError(path: string, d: { refused: string; encrypted: boolean }): CofferError {
  return new CofferError(
    'SOURCE_UNSUPPORTED',
    `${path} is ${d.refused}: Coffer cannot read it${
      d.encrypted ? ' (it has no key, and would back up ciphertext)' : ''
    }`,
    {
      hint: d.encrypted
        ? 'back up the decrypted disk (e.g. the opened /dev/mapper device), or add --format raw to store the ' +
          'encrypted bytes as they are'
        : 'decompress it first, or add --format raw to store the bytes as they are',
      details: { source: path, container: d.refused, encrypted: d.encrypted },
    },
  );
}
