import { randomBytes, scrypt } from 'node:crypto';
import { CofferError } from '../shared/index.js';

/** scrypt parameters stored in each key file (FORMAT.md §4). */
export interface ScryptParams {
  algorithm: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string; // base64, 32 bytes
}

export const DEFAULT_SCRYPT = { N: 1 << 15, r: 8, p: 1 } as const;
/** Bounds on stored parameters: a hostile key file must not make us allocate gigabytes or spin for hours. */
export const SCRYPT_LIMITS = { maxN: 1 << 22, maxR: 32, maxP: 4, maxMemBytes: 512 * 1024 ** 2 } as const;

export function newScryptParams(cost: Partial<Pick<ScryptParams, 'N' | 'r' | 'p'>> = {}): ScryptParams {
  return { algorithm: 'scrypt', ...DEFAULT_SCRYPT, ...cost, salt: randomBytes(32).toString('base64') };
}

export function checkScryptParams(p: ScryptParams): void {
  const pow2 = Number.isInteger(p.N) && p.N >= 2 && (p.N & (p.N - 1)) === 0;
  if (
    !pow2 ||
    p.N > SCRYPT_LIMITS.maxN ||
    !Number.isInteger(p.r) ||
    p.r < 1 ||
    p.r > SCRYPT_LIMITS.maxR ||
    !Number.isInteger(p.p) ||
    p.p < 1 ||
    p.p > SCRYPT_LIMITS.maxP ||
    128 * p.N * p.r > SCRYPT_LIMITS.maxMemBytes
  ) {
    throw new CofferError('CORRUPT', `key file has out-of-range scrypt parameters N=${p.N} r=${p.r} p=${p.p}`);
  }
}

export async function deriveKey(password: string, params: ScryptParams, lengthBytes = 32): Promise<Buffer> {
  checkScryptParams(params);
  const salt = Buffer.from(params.salt, 'base64');
  const maxmem = 128 * params.N * params.r + 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(
      password.normalize('NFC'),
      salt,
      lengthBytes,
      { N: params.N, r: params.r, p: params.p, maxmem },
      (err, key) =>
        err ? reject(new CofferError('CORRUPT', `scrypt failed: ${err.message}`, { cause: err })) : resolve(key),
    );
  });
}
