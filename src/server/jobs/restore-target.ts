import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { CofferError } from '../../shared/index.js';

/** A restore target must resolve inside one of the configured restore directories (no writing anywhere else). */
export function checkRestoreTarget(target: string, dirs: readonly string[]): string {
  const abs = isAbsolute(target) ? resolve(target) : resolve(dirs[0]!, target);
  for (const d of dirs) if (inside(d, abs)) return abs;
  throw new CofferError(
    'USAGE',
    `target: ${JSON.stringify(target)} is outside the restore directories (${dirs.join(', ')})`,
  );
}

const inside = (dir: string, p: string) => {
  const rel = relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * Checked again when a restore job starts, on the real file system: the target's directory, with symlinks resolved,
 * is inside a restore directory, and an existing target is a regular file (never a device or a symlink out).
 */
export async function confineRestoreTarget(target: string, dirs: readonly string[]): Promise<void> {
  const parent = await realpath(dirname(target)).catch(() => {
    throw new CofferError('TARGET_UNWRITABLE', `the directory of restore target ${target} does not exist`);
  });
  const real = await Promise.all(dirs.map((d) => realpath(d).catch(() => d)));
  if (!real.some((d) => d === parent || inside(d, parent)))
    throw new CofferError('TARGET_UNWRITABLE', `restore target ${target} resolves outside the restore directories`);
  const st = await lstat(target).catch(() => undefined);
  if (st && !st.isFile())
    throw new CofferError('TARGET_UNWRITABLE', `restore target ${target} exists and is not a regular file`);
}
