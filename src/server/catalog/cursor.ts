import { CofferError } from '../../shared/index.js';

/** Opaque pagination cursor: base64url of a JSON array of sort keys. */
export function encodeCursor(keys: (string | number)[]): string {
  return Buffer.from(JSON.stringify(keys)).toString('base64url');
}

export function decodeCursor(cursor: string | undefined, arity: number): (string | number)[] | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === arity && v.every((x) => typeof x === 'string' || typeof x === 'number'))
      return v;
  } catch {
    /* fall through */
  }
  throw new CofferError('USAGE', 'query.cursor: not a cursor this server issued');
}
