import { CofferError, type Op } from '../shared/index.js';
import type { BlockReader } from './block-reader.js';
import { crc32 } from './crc32.js';
import { looksLikeFat } from './fat.js';

/**
 * Partition tables: MBR (primary, extended and logical partitions) and GPT (docs/DESIGN.md §File-level restore).
 * Numbering as Linux does it: MBR slots 1-4 by slot, logical partitions from 5 in chain order; GPT entry i is i+1.
 * Empty slots get no number. A disk without a recognised table is one filesystem ("whole disk", number 0).
 */
export interface Partition {
  number: number;
  scheme: 'mbr' | 'gpt' | 'none';
  startBytes: number;
  sizeBytes: number;
  /** MBR type byte as 0xNN, or the GPT type GUID */
  type: string;
  /** GPT partition name */
  name?: string;
  /** an extended-partition container (holds logical partitions, not a filesystem) */
  container?: boolean;
  /** why this entry cannot be opened (past the disk end, overlapping ...); undefined when fine */
  problem?: string;
  /** what a known partition type is (EFI system, Microsoft reserved, Windows recovery, LDM ...) */
  role?: string;
  /** a partition recognised but not readable by file-level restore (LDM dynamic disks): why */
  unsupported?: string;
}

/** Partition types worth naming (Windows guests: docs/DESIGN.md §NTFS reader). */
const GPT_ROLES: Record<string, { role: string; unsupported?: string }> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': { role: 'EFI system partition' },
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': { role: 'Microsoft reserved (MSR, no filesystem)' },
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': { role: 'Microsoft basic data' },
  'DE94BBA4-06D1-4D40-A16A-BFD50179D6AC': { role: 'Windows recovery' },
  '5808C8AA-7E8F-42E0-85D2-E1E90434CFB3': {
    role: 'LDM metadata',
    unsupported:
      'it belongs to a Windows dynamic disk (LDM): dynamic volumes are not read by file-level restore (convert the ' +
      'disk to basic, or restore the whole disk)',
  },
  'AF9B60A0-1431-4F62-BC68-3311714A69AD': {
    role: 'LDM data',
    unsupported:
      'it belongs to a Windows dynamic disk (LDM): dynamic volumes are not read by file-level restore (convert the ' +
      'disk to basic, or restore the whole disk)',
  },
};
const MBR_ROLES: Record<number, { role: string; unsupported?: string }> = {
  7: { role: 'NTFS/exFAT' },
  39: { role: 'Windows recovery (hidden NTFS)' },
  66: {
    role: 'Windows dynamic disk (LDM)',
    unsupported:
      'it is a Windows dynamic disk (LDM, MBR type 0x42): dynamic volumes are not read by file-level restore ' +
      '(convert the disk to basic, or restore the whole disk)',
  },
  239: { role: 'EFI system partition' },
};

function withRole(p: Partition, known: { role: string; unsupported?: string } | undefined): Partition {
  if (known) {
    p.role = known.role;
    if (known.unsupported) p.unsupported = known.unsupported;
  }
  return p;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt' | 'none';
  sectorBytes: number;
  partitions: Partition[];
}

const MAX_LOGICAL = 128;
const MAX_GPT_ENTRIES = 16384;
const MAX_GPT_ARRAY_BYTES = 4 * 1024 * 1024;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);

function corrupt(msg: string, details: Record<string, unknown> = {}): CofferError {
  return new CofferError('FS_CORRUPT', msg, { details });
}

export async function readPartitionTable(disk: BlockReader, op?: Op): Promise<PartitionTable> {
  if (disk.sizeBytes < 512) throw corrupt(`the disk is too small (${disk.sizeBytes} bytes) to hold a filesystem`);
  const mbr = await disk.read(0, 512, op);
  const whole: PartitionTable = {
    scheme: 'none',
    sectorBytes: 512,
    partitions: [{ number: 0, scheme: 'none', startBytes: 0, sizeBytes: disk.sizeBytes, type: 'whole disk' }],
  };
  if (mbr.readUInt16LE(510) !== 0xaa55) return whole;
  const entries = [0, 1, 2, 3].map((i) => mbr.subarray(446 + i * 16, 462 + i * 16));
  if (entries.some((e) => e[4] === 0xee)) return readGpt(disk, op);
  // A FAT boot sector also ends in 55 AA: a volume without a table is recognised by its BPB.
  if (looksLikeFat(mbr)) return whole;
  // so does an NTFS (or BitLocker) boot sector: a volume written to the whole disk
  if (['NTFS    ', '-FVE-FS-'].includes(mbr.subarray(3, 11).toString('latin1'))) return whole;
  if (entries.some((e) => e[0] !== 0 && e[0] !== 0x80))
    throw corrupt(
      'the MBR has an invalid boot indicator (not a partition table, and no filesystem recognised on the whole disk)',
    );
  const parts: Partition[] = [];
  for (const [i, e] of entries.entries()) {
    const type = e[4]!;
    if (type === 0) continue;
    const start = e.readUInt32LE(8) * 512;
    const size = e.readUInt32LE(12) * 512;
    const p: Partition = withRole(
      { number: i + 1, scheme: 'mbr', startBytes: start, sizeBytes: size, type: hexType(type) },
      MBR_ROLES[type],
    );
    if (EXTENDED_TYPES.has(type)) p.container = true;
    parts.push(p);
  }
  const extended = parts.filter((p) => p.container);
  if (extended.length > 1) throw corrupt('the MBR has more than one extended partition');
  checkBounds(parts, disk.sizeBytes);
  if (extended[0] && !extended[0].problem) parts.push(...(await readLogical(disk, extended[0], op)));
  checkOverlaps(parts);
  return { scheme: 'mbr', sectorBytes: 512, partitions: parts };
}

function hexType(t: number): string {
  return `0x${t.toString(16).padStart(2, '0')}`;
}

/** The chain of extended boot records inside an extended partition: at most MAX_LOGICAL, no cycles, inside it. */
async function readLogical(disk: BlockReader, ext: Partition, op?: Op): Promise<Partition[]> {
  const out: Partition[] = [];
  const seen = new Set<number>();
  let ebr = ext.startBytes;
  while (true) {
    if (seen.has(ebr)) throw corrupt(`the extended partition's chain of boot records loops (at byte ${ebr})`);
    if (seen.size >= MAX_LOGICAL) throw corrupt(`more than ${MAX_LOGICAL} logical partitions`);
    seen.add(ebr);
    if (ebr < ext.startBytes || ebr + 512 > ext.startBytes + ext.sizeBytes)
      throw corrupt(`an extended boot record at byte ${ebr} lies outside the extended partition`);
    const s = await disk.read(ebr, 512, op);
    if (s.readUInt16LE(510) !== 0xaa55) throw corrupt(`the extended boot record at byte ${ebr} has no 55 AA signature`);
    const a = s.subarray(446, 462);
    const b = s.subarray(462, 478);
    if (a[4] !== 0) {
      const start = ebr + a.readUInt32LE(8) * 512;
      const size = a.readUInt32LE(12) * 512;
      const p: Partition = withRole(
        { number: 5 + out.length, scheme: 'mbr', startBytes: start, sizeBytes: size, type: hexType(a[4]!) },
        MBR_ROLES[a[4]!],
      );
      if (start < ext.startBytes || start + size > ext.startBytes + ext.sizeBytes)
        p.problem = 'lies outside its extended partition';
      if (start + size > disk.sizeBytes) p.problem = 'extends past the end of the disk';
      out.push(p);
    }
    if (b[4] === 0 || b.readUInt32LE(8) === 0) break;
    ebr = ext.startBytes + b.readUInt32LE(8) * 512;
  }
  return out;
}

function checkBounds(parts: Partition[], diskBytes: number): void {
  for (const p of parts) {
    if (p.sizeBytes === 0) p.problem = 'has size 0';
    else if (p.startBytes + p.sizeBytes > diskBytes)
      p.problem = `extends past the end of the disk (${p.startBytes + p.sizeBytes} > ${diskBytes} bytes)`;
    else if (p.startBytes === 0 && p.scheme !== 'none') p.problem = 'starts at sector 0 (over the partition table)';
  }
}

function checkOverlaps(parts: Partition[]): void {
  for (const a of parts) {
    for (const b of parts) {
      if (a === b || a.number > b.number) continue;
      // a logical partition lies inside its container by design
      if (a.container || b.container) continue;
      if (a.startBytes < b.startBytes + b.sizeBytes && b.startBytes < a.startBytes + a.sizeBytes) {
        a.problem ??= `overlaps partition ${b.number}`;
        b.problem ??= `overlaps partition ${a.number}`;
      }
    }
  }
}

function guid(b: Buffer): string {
  const h = b.toString('hex');
  const le = (s: string) => s.match(/../g)!.reverse().join('');
  return (
    `${le(h.slice(0, 8))}-${le(h.slice(8, 12))}-${le(h.slice(12, 16))}-` + `${h.slice(16, 20)}-${h.slice(20)}`
  ).toUpperCase();
}

interface GptHeader {
  entriesLba: number;
  count: number;
  entrySize: number;
  entriesCrc: number;
  firstUsable: number;
  lastUsable: number;
}

function parseGptHeader(h: Buffer, sector: number, diskBytes: number): GptHeader | string {
  if (h.subarray(0, 8).toString('latin1') !== 'EFI PART') return 'no EFI PART signature';
  const size = h.readUInt32LE(12);
  if (size < 92 || size > sector) return `header size ${size} is invalid`;
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== h.readUInt32LE(16)) return 'header CRC mismatch';
  const num = (o: number) => Number(h.readBigUInt64LE(o));
  const count = h.readUInt32LE(80);
  const entrySize = h.readUInt32LE(84);
  if (entrySize < 128 || entrySize % 8 !== 0 || entrySize > 4096) return `entry size ${entrySize} is invalid`;
  if (count > MAX_GPT_ENTRIES || count * entrySize > MAX_GPT_ARRAY_BYTES) return `absurd entry count ${count}`;
  const hdr = {
    entriesLba: num(72),
    count,
    entrySize,
    entriesCrc: h.readUInt32LE(88),
    firstUsable: num(40),
    lastUsable: num(48),
  };
  if ((hdr.entriesLba + 1) * sector + count * entrySize > diskBytes + sector)
    return 'partition entry array lies past the disk end';
  return hdr;
}

async function readGpt(disk: BlockReader, op?: Op): Promise<PartitionTable> {
  const problems: string[] = [];
  for (const sector of [512, 4096]) {
    if (disk.sizeBytes < sector * 3) continue;
    const lastLba = Math.floor(disk.sizeBytes / sector) - 1;
    for (const [which, lba] of [
      ['primary', 1],
      ['backup', lastLba],
    ] as const) {
      const hdr = parseGptHeader(await disk.read(lba * sector, sector, op), sector, disk.sizeBytes);
      if (typeof hdr === 'string') {
        if (sector === 512 || hdr !== 'no EFI PART signature')
          problems.push(`${which} GPT header (${sector}-byte sectors): ${hdr}`);
        continue;
      }
      const arrayBytes = hdr.count * hdr.entrySize;
      if (hdr.entriesLba * sector + arrayBytes > disk.sizeBytes) {
        problems.push(`${which} GPT entry array lies past the disk end`);
        continue;
      }
      const arr = await disk.read(hdr.entriesLba * sector, arrayBytes, op);
      if (crc32(arr) !== hdr.entriesCrc) {
        problems.push(`${which} GPT partition entry array CRC mismatch`);
        continue;
      }
      const parts: Partition[] = [];
      for (let i = 0; i < hdr.count; i++) {
        const e = arr.subarray(i * hdr.entrySize, i * hdr.entrySize + 128);
        if (e.subarray(0, 16).every((x) => x === 0)) continue;
        const first = Number(e.readBigUInt64LE(32));
        const last = Number(e.readBigUInt64LE(40));
        const name = e.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
        const type = guid(e.subarray(0, 16));
        const p: Partition = withRole(
          {
            number: i + 1,
            scheme: 'gpt',
            startBytes: first * sector,
            sizeBytes: Math.max(0, last - first + 1) * sector,
            type,
            name,
          },
          GPT_ROLES[type],
        );
        if (last < first) p.problem = 'ends before it starts';
        else if (first < hdr.firstUsable || last > hdr.lastUsable)
          p.problem = 'lies outside the usable area of the disk';
        parts.push(p);
      }
      checkBounds(parts, disk.sizeBytes);
      checkOverlaps(parts);
      return { scheme: 'gpt', sectorBytes: sector, partitions: parts };
    }
  }
  throw corrupt(`the GPT is damaged: ${problems.join('; ')}`, { problems });
}
