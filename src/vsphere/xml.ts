import { createRequire } from 'node:module';
import type { XMLParser } from 'fast-xml-parser';
import { CofferError } from '../shared/index.js';

export const NS_XSI = 'http://www.w3.org/2001/XMLSchema-instance';
export const NS_SOAPENV = 'http://schemas.xmlsoap.org/soap/envelope/';

/**
 * One element of a parsed SOAP reply: local name, resolved namespace, attributes by qualified name, children and text.
 * `xsiType` is the local part of the xsi:type attribute, whatever prefix the server bound the XML Schema instance
 * namespace to (vcsim writes `XMLSchema-instance:type`, vCenter `xsi:type`).
 */
export interface XmlNode {
  name: string;
  ns: string | undefined;
  attrs: Record<string, string>;
  xsiType: string | undefined;
  children: XmlNode[];
  text: string;
}

/** Limits against hostile replies (a SOAP reply of vCenter is far below these). */
const MAX_REPLY_BYTES = 256 * 1024 * 1024;
const MAX_DEPTH = 64;

/**
 * The parser, made on first use from fast-xml-parser's single-file CommonJS build: its ESM build is ~40 modules and
 * took 150-290 ms of every `coffer` start-up (commands that never talk to vCenter included), the CJS file ~25 ms.
 */
let parser: XMLParser | undefined;
function xmlParser(): XMLParser {
  if (parser) return parser;
  const fxp = createRequire(import.meta.url)('fast-xml-parser') as typeof import('fast-xml-parser');
  parser = new fxp.XMLParser(PARSER_OPTIONS);
  return parser;
}

const PARSER_OPTIONS = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
};

type Raw = Record<string, unknown>;

/** Parses an XML document into XmlNodes; anything malformed is a VSPHERE_FAULT (a bogus reply), never a crash. */
export function parseXml(text: string, what = 'vCenter reply'): XmlNode {
  if (text.length > MAX_REPLY_BYTES) throw bogus(what, 'is too large');
  let raw: unknown;
  try {
    raw = xmlParser().parse(text, true);
  } catch (e) {
    throw bogus(what, `is not well-formed XML (${(e as Error).message.split('\n')[0]})`);
  }
  if (!Array.isArray(raw)) throw bogus(what, 'is not XML');
  const roots = raw
    .map((r) => convert(r as Raw, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]), 0, what))
    .filter((n): n is XmlNode => n !== undefined);
  if (roots.length !== 1) throw bogus(what, `has ${roots.length} root elements`);
  return roots[0]!;
}

function bogus(what: string, why: string): CofferError {
  return new CofferError('VSPHERE_FAULT', `${what} ${why}`, { details: { protocol: true } });
}

function convert(r: Raw, scope: Map<string, string>, depth: number, what: string): XmlNode | undefined {
  if (depth > MAX_DEPTH) throw bogus(what, 'is nested too deeply');
  const keys = Object.keys(r).filter((k) => k !== ':@');
  const tag = keys[0];
  if (tag === undefined || tag === '#text' || tag.startsWith('?') || tag === '#comment') return undefined;
  const attrs: Record<string, string> = {};
  const rawAttrs = (r[':@'] ?? {}) as Record<string, unknown>;
  let inner = scope;
  for (const [k, v] of Object.entries(rawAttrs)) {
    const value = String(v);
    attrs[k] = value;
    if (k === 'xmlns' || k.startsWith('xmlns:')) {
      if (inner === scope) inner = new Map(scope);
      inner.set(k === 'xmlns' ? '' : k.slice(6), value);
    }
  }
  const [prefix, local] = splitQName(tag);
  let xsiType: string | undefined;
  for (const [k, v] of Object.entries(attrs)) {
    if (!k.includes(':') || k.startsWith('xmlns:')) continue;
    const [p, l] = splitQName(k);
    if (l === 'type' && inner.get(p) === NS_XSI) xsiType = splitQName(v)[1];
  }
  const node: XmlNode = { name: local, ns: inner.get(prefix), attrs, xsiType, children: [], text: '' };
  const content = r[tag];
  if (Array.isArray(content)) {
    for (const c of content as Raw[]) {
      if (c && typeof c === 'object' && '#text' in c) node.text += String(c['#text']);
      else if (c && typeof c === 'object') {
        const child = convert(c, inner, depth + 1, what);
        if (child) node.children.push(child);
      }
    }
  }
  return node;
}

function splitQName(q: string): [string, string] {
  const i = q.indexOf(':');
  return i < 0 ? ['', q] : [q.slice(0, i), q.slice(i + 1)];
}

/** Typed navigation of a reply; missing required parts are VSPHERE_FAULT (bogus reply). */
export function child(n: XmlNode, name: string): XmlNode | undefined {
  return n.children.find((c) => c.name === name);
}

export function children(n: XmlNode, name: string): XmlNode[] {
  return n.children.filter((c) => c.name === name);
}

export function need(n: XmlNode, name: string): XmlNode {
  const c = child(n, name);
  if (!c) throw bogus(`vCenter reply element <${n.name}>`, `lacks <${name}>`);
  return c;
}

export function textOf(n: XmlNode, name: string): string | undefined {
  return child(n, name)?.text;
}

export function intOf(n: XmlNode, name: string): number | undefined {
  const t = textOf(n, name);
  if (t === undefined) return undefined;
  const v = Number(t.trim());
  if (!Number.isSafeInteger(v))
    throw bogus(`vCenter reply element <${n.name}><${name}>`, `is not an integer (${JSON.stringify(t.slice(0, 40))})`);
  return v;
}

export function boolOf(n: XmlNode, name: string): boolean | undefined {
  const t = textOf(n, name)?.trim();
  if (t === undefined) return undefined;
  return t === 'true' || t === '1';
}

/**
 * A managed object reference: `<x type="VirtualMachine">vm-42</x>`. Ids are opaque (vcsim's datastores look like
 * paths).
 */
export class MoRef {
  constructor(
    readonly type: string,
    readonly value: string,
  ) {}
  toString(): string {
    return `${this.type}:${this.value}`;
  }
  equals(o: MoRef | undefined): boolean {
    return o !== undefined && o.type === this.type && o.value === this.value;
  }
  static from(n: XmlNode): MoRef {
    const type = n.attrs['type'];
    if (!type) throw bogus(`vCenter reply element <${n.name}>`, 'is not a managed object reference (no type)');
    return new MoRef(type, n.text.trim());
  }
}

export function refOf(n: XmlNode, name: string): MoRef | undefined {
  const c = child(n, name);
  return c ? MoRef.from(c) : undefined;
}

// ---- writing requests -----------------------------------------------------------------------------------------

/**
 * A value to serialize as SOAP: strings, numbers, booleans, MoRefs, arrays (repeated elements), and objects whose
 * keys are written in insertion order (vim25 sequences are ordered). `_type` becomes xsi:type; undefined is omitted.
 */
export type SoapValue = string | number | boolean | MoRef | SoapObject | SoapValue[] | undefined | null;
export interface SoapObject {
  _type?: string;
  /** simple content of a typed value, e.g. { _type: 'xsd:string', _text: 'TRUE' } for an OptionValue's value */
  _text?: string;
  [field: string]: SoapValue;
}

export function escapeXml(s: string): string {
  return s
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!)
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '');
}

export function serialize(name: string, v: SoapValue): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map((x) => serialize(name, x)).join('');
  if (v instanceof MoRef) return `<${name} type="${escapeXml(v.type)}">${escapeXml(v.value)}</${name}>`;
  if (typeof v === 'object') {
    const t = v._type ? ` xsi:type="${escapeXml(v._type)}"` : '';
    if (typeof v._text === 'string') return `<${name}${t}>${escapeXml(v._text)}</${name}>`;
    let body = '';
    for (const [k, x] of Object.entries(v)) if (k !== '_type') body += serialize(k, x);
    return `<${name}${t}>${body}</${name}>`;
  }
  return `<${name}>${escapeXml(String(v))}</${name}>`;
}

export function envelope(
  method: string,
  self: MoRef,
  args: Record<string, SoapValue>,
  namespace = 'urn:vim25',
  header = '',
): string {
  let body = serialize('_this', self);
  for (const [k, v] of Object.entries(args)) body += serialize(k, v);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<soapenv:Envelope xmlns:soapenv="${NS_SOAPENV}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
    `xmlns:xsi="${NS_XSI}">` +
    (header ? `<soapenv:Header>${header}</soapenv:Header>` : '') +
    `<soapenv:Body><${method} xmlns="${namespace}">${body}</${method}></soapenv:Body></soapenv:Envelope>`
  );
}
