import { corrupt } from './errors.js';

export const TAG = { MOUNT_POINT: 0xa0000003, SYMLINK: 0xa000000c } as const;

const KNOWN: Record<number, string> = {
  2147483667: 'deduplicated (Data Deduplication)',
  2147483671: 'compressed by Windows (WOF)',
  2147483675: 'an AppExecLink',
  2415919130: 'a cloud file placeholder (OneDrive)',
  2147483668: 'an NFS object',
  2147483658: 'a DFS link',
  2147483683: 'an AF_UNIX socket',
};

export function describeTag(tag: number): string {
  return KNOWN[tag] ?? `a reparse point with tag 0x${tag.toString(16).padStart(8, '0')}`;
}

export interface Reparse {
  tag: number;
  /** symlinks and junctions: the target as stored (print name, else substitute name) */
  target?: string;
  relative?: boolean;
}

/** A $REPARSE_POINT value: tag, length, then for symlinks and junctions the substitute and print names. */
export function parseReparse(b: Buffer, where: string): Reparse {
  if (b.length < 8) throw corrupt(`${where}: reparse point of ${b.length} bytes`);
  const tag = b.readUInt32LE(0);
  const dataLen = b.readUInt16LE(4);
  if (8 + dataLen > b.length) throw corrupt(`${where}: reparse data of ${dataLen} bytes overflows its attribute`);
  if (tag !== TAG.SYMLINK && tag !== TAG.MOUNT_POINT) return { tag };
  const body = b.subarray(8, 8 + dataLen);
  const pathBase = tag === TAG.SYMLINK ? 12 : 8;
  if (body.length < pathBase) throw corrupt(`${where}: reparse data cut short`);
  const name = (off: number, len: number) => {
    if (off % 2 || len % 2 || pathBase + off + len > body.length)
      throw corrupt(`${where}: reparse name outside its data`);
    return body.subarray(pathBase + off, pathBase + off + len).toString('utf16le');
  };
  const sub = name(body.readUInt16LE(0), body.readUInt16LE(2));
  const print = name(body.readUInt16LE(4), body.readUInt16LE(6));
  const relative = tag === TAG.SYMLINK && (body.readUInt32LE(8) & 1) === 1;
  return { tag, target: print || sub, relative };
}
