import { CofferError } from '../shared/index.js';

/** Small typed readers for untrusted JSON: every failure is CORRUPT with the field path. */
export class JsonReader {
  constructor(
    private readonly what: string,
    private readonly value: unknown,
    private readonly path = '',
  ) {}

  static parse(what: string, bytes: Uint8Array | string): JsonReader {
    let v: unknown;
    try {
      v = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
    } catch (e) {
      throw new CofferError('CORRUPT', `${what}: not valid JSON`, { cause: e });
    }
    return new JsonReader(what, v);
  }

  fail(why: string): never {
    throw new CofferError('CORRUPT', `${this.what}: ${this.path || 'value'} ${why}`);
  }

  private get obj(): Record<string, unknown> {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value))
      this.fail('is not an object');
    return this.value as Record<string, unknown>;
  }

  field(key: string): JsonReader {
    return new JsonReader(this.what, this.obj[key], this.path ? `${this.path}.${key}` : key);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  str(key: string, maxLength = 4096): string {
    const r = this.field(key);
    if (typeof r.value !== 'string' || r.value.length > maxLength)
      r.fail(`must be a string of at most ${maxLength} chars`);
    return r.value as string;
  }

  optStr(key: string, maxLength = 4096): string | undefined {
    return this.has(key) ? this.str(key, maxLength) : undefined;
  }

  matching(key: string, re: RegExp): string {
    const s = this.str(key);
    if (!re.test(s)) this.field(key).fail(`has an invalid format`);
    return s;
  }

  int(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const r = this.field(key);
    const v = r.value;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      r.fail(`must be an integer in [${min}, ${max}]`);
    return v as number;
  }

  bool(key: string): boolean {
    const r = this.field(key);
    if (typeof r.value !== 'boolean') r.fail('must be a boolean');
    return r.value as boolean;
  }

  literal<T extends string | number>(key: string, allowed: readonly T[]): T {
    const r = this.field(key);
    if (!allowed.includes(r.value as T)) r.fail(`must be one of ${allowed.join(', ')}`);
    return r.value as T;
  }

  time(key: string): string {
    const s = this.str(key, 64);
    if (Number.isNaN(Date.parse(s))) this.field(key).fail('is not an ISO 8601 time');
    return s;
  }

  array(key: string, maxItems = 100_000): JsonReader[] {
    const r = this.field(key);
    if (!Array.isArray(r.value) || r.value.length > maxItems) r.fail(`must be an array of at most ${maxItems} items`);
    return (r.value as unknown[]).map((v, i) => new JsonReader(this.what, v, `${r.path}[${i}]`));
  }

  strings(key: string, maxItems = 1000): string[] {
    return this.array(key, maxItems).map((r) => {
      if (typeof r.value !== 'string' || r.value.length > 1024) r.fail('must be a string');
      return r.value as string;
    });
  }

  /** An array of non-negative safe integers. */
  ints(key: string, maxItems = 1000): number[] {
    return this.array(key, maxItems).map((r) => {
      if (typeof r.value !== 'number' || !Number.isSafeInteger(r.value) || r.value < 0)
        r.fail('must be a non-negative integer');
      return r.value as number;
    });
  }

  /** Free-form object kept as is (bounded by the blob size limit). */
  raw(key: string): Record<string, unknown> {
    const r = this.field(key);
    if (typeof r.value !== 'object' || r.value === null || Array.isArray(r.value)) r.fail('must be an object');
    return r.value as Record<string, unknown>;
  }
}
