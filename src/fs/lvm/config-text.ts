import { CofferError } from '../../shared/index.js';

/**
 * LVM2's text metadata ("config" format, docs/DESIGN.md §LVM2): `key = value`, `name { ... }` sections, values that
 * are integers, "strings" or [arrays]. A small bounded parser for untrusted text: nesting depth, the number of values
 * and the text length are capped; integers beyond 2^53 are refused; nothing is evaluated.
 */

export type ConfigValue = number | string | ConfigValue[] | ConfigSection;
export interface ConfigSection {
  [key: string]: ConfigValue;
}

export const MAX_CONFIG_DEPTH = 16;
export const MAX_CONFIG_VALUES = 200_000;
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

function corrupt(msg: string): CofferError {
  return new CofferError('FS_CORRUPT', `lvm2 metadata: ${msg}`);
}

export function isSection(v: ConfigValue | undefined): v is ConfigSection {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseConfig(text: string): ConfigSection {
  if (text.length > MAX_CONFIG_BYTES) throw corrupt(`${text.length} bytes of text (at most ${MAX_CONFIG_BYTES})`);
  let p = 0;
  let values = 0;
  const line = () => text.slice(0, p).split('\n').length;
  const skip = () => {
    for (;;) {
      while (p < text.length && /\s/.test(text[p]!)) p++;
      if (text[p] === '#') {
        while (p < text.length && text[p] !== '\n') p++;
        continue;
      }
      return;
    }
  };
  const ident = (): string => {
    const m = /^[A-Za-z0-9_+.-]+/.exec(text.slice(p, p + 256));
    if (!m) throw corrupt(`a name expected at line ${line()}`);
    p += m[0].length;
    return m[0];
  };
  const value = (depth: number): ConfigValue => {
    if (++values > MAX_CONFIG_VALUES) throw corrupt(`more than ${MAX_CONFIG_VALUES} values`);
    skip();
    const c = text[p];
    if (c === '"') {
      let s = '';
      p++;
      for (;;) {
        if (p >= text.length) throw corrupt('unterminated string');
        const ch = text[p++]!;
        if (ch === '"') break;
        if (ch === '\\' && p < text.length) s += text[p++]!;
        else s += ch;
      }
      return s;
    }
    if (c === '[') {
      if (depth >= MAX_CONFIG_DEPTH) throw corrupt(`nested deeper than ${MAX_CONFIG_DEPTH}`);
      p++;
      const arr: ConfigValue[] = [];
      skip();
      if (text[p] === ']') {
        p++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        skip();
        if (text[p] === ',') {
          p++;
          continue;
        }
        if (text[p] === ']') {
          p++;
          return arr;
        }
        throw corrupt(`',' or ']' expected at line ${line()}`);
      }
    }
    const m = /^-?[0-9]+(\.[0-9]+)?/.exec(text.slice(p, p + 64));
    if (!m) throw corrupt(`a value expected at line ${line()}`);
    p += m[0].length;
    const n = Number(m[0]);
    if (!Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n)) || m[0].replace(/^-/, '').length > 20)
      throw corrupt(`number ${m[0].slice(0, 40)} is too large`);
    return n;
  };
  const section = (depth: number, closing: boolean): ConfigSection => {
    if (depth > MAX_CONFIG_DEPTH) throw corrupt(`sections nested deeper than ${MAX_CONFIG_DEPTH}`);
    const out: ConfigSection = Object.create(null) as ConfigSection;
    for (;;) {
      skip();
      if (p >= text.length) {
        if (closing) throw corrupt('a section is not closed');
        return out;
      }
      if (text[p] === '}') {
        if (!closing) throw corrupt(`unexpected '}' at line ${line()}`);
        p++;
        return out;
      }
      if (text[p] === '\0') {
        if (closing) throw corrupt('a section is not closed');
        return out; // the metadata area pads the text with NULs
      }
      const key = ident();
      skip();
      if (text[p] === '{') {
        p++;
        if (++values > MAX_CONFIG_VALUES) throw corrupt(`more than ${MAX_CONFIG_VALUES} values`);
        out[key] = section(depth + 1, true);
      } else if (text[p] === '=') {
        p++;
        out[key] = value(depth);
      } else throw corrupt(`'=' or '{' expected after ${key.slice(0, 40)} at line ${line()}`);
    }
  };
  return section(0, false);
}
