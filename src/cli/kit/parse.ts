import { CofferError } from '../../shared/index.js';

export function parseInteger(s: string, what: string): number {
  if (!/^-?\d+$/.test(s.trim())) throw new CofferError('USAGE', `${what} must be an integer, not ${JSON.stringify(s)}`);
  return Number(s);
}

/** '4M', '64K', '4194304', '4MiB' -> bytes. */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+)\s*([KMG]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new CofferError('USAGE', `${what}: cannot parse size ${JSON.stringify(s)}`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

/** '20M', '512K', '1G', '1000000' (bytes per second; a trailing /s or B/s is accepted). */
export function parseRate(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(s.trim());
  if (!m)
    throw new CofferError('USAGE', `--limit-upload: cannot parse rate ${JSON.stringify(s)} (e.g. 20M for 20 MiB/s)`);
  return Math.round(
    Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'],
  );
}

/** An optional integer flag. */
export function parseOptionalInteger(s: string | undefined, what: string): number | undefined {
  return s === undefined ? undefined : parseInteger(s, what);
}
