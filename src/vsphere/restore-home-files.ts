import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { CofferError, silentLogger, type Logger, type Op } from '../shared/index.js';
import type { HttpDatastoreTransport } from './disk-transport.js';
import { retrieveOne } from './property-collector.js';
import type { VimClient } from './vim-client.js';
import { parseDatastorePath } from './vm-model.js';
import { textOf, type MoRef } from './xml.js';

/** One small file of the VM's home folder kept in the restore point (FORMAT.md §6.1.1). */
export interface StoredHomeFile {
  kind: 'vmx' | 'nvram';
  /** base name at backup time, e.g. `web01.nvram` */
  name: string;
  sizeBytes: number;
  /** hex SHA-256 of the bytes */
  sha256: string;
  /** the bytes, base64 */
  data: string;
}

/** `vmConfig.homeFiles` (FORMAT.md §6.1.1, version 1). */
export interface StoredHomeFiles {
  version: 1;
  files: StoredHomeFile[];
}

/** FORMAT.md §6.1.1: at most this many bytes a file (an EFI .nvram is 8 KiB to ~540 KiB), at most 4 files. */
export const HOME_FILE_MAX_BYTES = 1 << 20;
export const HOME_FILES_MAX = 4;

/**
 * Downloads the VM's `.vmx` and `.nvram` through /folder (small files in the VM's home namespace, which vCenter
 * serves on vSAN too). Their names come from `layoutEx.file` (types `config`, `nvram`), else from
 * `config.files.vmPathName`. Best effort: a file that cannot be read (missing, too large, locked) is a warning, never a
 * failed backup.
 */
export async function fetchHomeFiles(
  client: VimClient,
  transport: HttpDatastoreTransport,
  vm: MoRef,
  datacenter: string,
  op: Op & { logger?: Logger | undefined } = {},
): Promise<{ homeFiles: StoredHomeFiles | undefined; warnings: string[] }> {
  const logger = op.logger ?? silentLogger;
  const warnings: string[] = [];
  let o: Awaited<ReturnType<typeof retrieveOne>>;
  try {
    o = await retrieveOne(client, vm, ['layoutEx.file', 'config.files.vmPathName'], op);
  } catch (e) {
    if (e instanceof CofferError && (e.code === 'CANCELLED' || e.code === 'VSPHERE_AUTH')) throw e;
    warnings.push(`the VM's home-folder files could not be listed (${(e as Error).message}): not kept`);
    logger.warn(warnings[0]!);
    return { homeFiles: undefined, warnings };
  }
  const layout = (o.props.get('layoutEx.file')?.children ?? []).map((f) => ({
    name: textOf(f, 'name') ?? '',
    type: textOf(f, 'type') ?? '',
  }));
  const vmx = o.props.get('config.files.vmPathName')?.text.trim() || layout.find((f) => f.type === 'config')?.name;
  const dirOf = (p: string) => p.replace(/\/[^/]*$/, '');
  // the .nvram beside the .vmx first: layoutEx names it too, but not every server gives its full path there
  const listed = layout.find((f) => f.type === 'nvram')?.name;
  const beside = vmx?.replace(/\.vmx$/i, '.nvram');
  const nvram = [...new Set([listed && beside && dirOf(listed) === dirOf(beside) ? listed : beside, listed])].filter(
    (x): x is string => Boolean(x) && x !== vmx,
  );
  const wanted: { kind: 'vmx' | 'nvram'; paths: string[] }[] = [];
  if (vmx) wanted.push({ kind: 'vmx', paths: [vmx] });
  if (nvram.length) wanted.push({ kind: 'nvram', paths: nvram });
  const files: StoredHomeFile[] = [];
  for (const w of wanted) {
    const errors: string[] = [];
    for (const where of w.paths) {
      try {
        const { datastore, path } = parseDatastorePath(where);
        const { body, total } = await transport.get(datacenter, datastore, path, 0, HOME_FILE_MAX_BYTES, op, true);
        if (total > HOME_FILE_MAX_BYTES) {
          errors.push(`${where} has ${total} bytes, more than ${HOME_FILE_MAX_BYTES}`);
          break;
        }
        files.push({
          kind: w.kind,
          name: path.replace(/^.*\//, ''),
          sizeBytes: body.length,
          sha256: createHash('sha256').update(body).digest('hex'),
          data: body.toString('base64'),
        });
        errors.length = 0;
        break;
      } catch (e) {
        if (e instanceof CofferError && (e.code === 'CANCELLED' || e.code === 'VSPHERE_AUTH')) throw e;
        errors.push(`${where}: ${(e as Error).message}`);
      }
    }
    if (errors.length) warnings.push(`the VM's ${w.kind} file could not be read (${errors.join('; ')}): not kept`);
  }
  for (const w of warnings) logger.warn(w);
  return { homeFiles: files.length ? { version: 1, files } : undefined, warnings };
}

/**
 * Checks `vmConfig.homeFiles` read from a manifest (untrusted): `fail` (CORRUPT) for anything off-schema, a size or
 * digest that does not match; undefined for a version this Coffer does not know (the section is optional: ignored).
 */
export function parseHomeFiles(v: unknown, fail: (why: string) => never): StoredHomeFiles | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('are not an object');
  const o = v as Record<string, unknown>;
  if (o['version'] !== 1) return undefined;
  const list = o['files'];
  if (!Array.isArray(list) || list.length > HOME_FILES_MAX) return fail('have an invalid file list');
  const files = list.map((x: unknown): StoredHomeFile => {
    if (typeof x !== 'object' || x === null) return fail('have an invalid entry');
    const f = x as Record<string, unknown>;
    const kind = f['kind'];
    if (kind !== 'vmx' && kind !== 'nvram') return fail(`have an unknown kind ${JSON.stringify(kind)}`);
    const name = f['name'];
    if (typeof name !== 'string' || !/^[^/\\\0]{1,255}$/.test(name) || name === '.' || name === '..')
      return fail('have an invalid file name');
    const size = f['sizeBytes'];
    const sha = f['sha256'];
    const data = f['data'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > HOME_FILE_MAX_BYTES)
      return fail(`have an invalid size for ${name}`);
    if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)) return fail(`have an invalid digest for ${name}`);
    if (typeof data !== 'string' || data.length > Math.ceil(HOME_FILE_MAX_BYTES / 3) * 4 + 4)
      return fail(`have invalid data for ${name}`);
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length !== size || createHash('sha256').update(bytes).digest('hex') !== sha)
      return fail(`have data for ${name} that does not match its size and digest`);
    return { kind, name, sizeBytes: size, sha256: sha, data };
  });
  return { version: 1, files };
}

/** The stored file of that kind, decoded (undefined when the restore point has none). */
export function homeFile(h: StoredHomeFiles | undefined, kind: 'vmx' | 'nvram'): Buffer | undefined {
  const f = h?.files.find((x) => x.kind === kind);
  return f ? Buffer.from(f.data, 'base64') : undefined;
}

/** Whether the stored .vmx says the VM had a virtual TPM (`vtpm.present = "TRUE"`). */
export function vmxHasVtpm(h: StoredHomeFiles | undefined): boolean {
  const vmx = homeFile(h, 'vmx');
  return vmx ? /^\s*vtpm\.present\s*=\s*"?true"?\s*$/im.test(vmx.toString('latin1')) : false;
}

/**
 * Writes the stored .nvram into a VM Coffer has just created (before it is powered on): the file the new VM's
 * `layoutEx` names as its nvram, else `<vmx name>.nvram` beside its .vmx, always inside the VM's home folder.
 * Returns the datastore path written.
 */
export async function uploadNvram(
  client: VimClient,
  transport: HttpDatastoreTransport,
  vm: MoRef,
  datacenter: string,
  nvram: Buffer,
  op: Op = {},
): Promise<string> {
  const o = await retrieveOne(client, vm, ['layoutEx.file', 'config.files.vmPathName'], op);
  const vmx = o.props.get('config.files.vmPathName')?.text.trim();
  if (!vmx) throw new CofferError('VSPHERE_FAULT', `vCenter sent no .vmx path for the new VM ${vm.value}`);
  const home = parseDatastorePath(vmx);
  const dir = home.path.includes('/') ? home.path.replace(/\/[^/]*$/, '') : '';
  const named = (o.props.get('layoutEx.file')?.children ?? []).find((f) => textOf(f, 'type') === 'nvram');
  let path = `${dir ? `${dir}/` : ''}${home.path.replace(/^.*\//, '').replace(/\.vmx$/i, '')}.nvram`;
  if (named) {
    const p = parseDatastorePath(textOf(named, 'name') ?? '');
    // only a file directly in the VM's home folder on the same datastore; anything else keeps the default name
    if (p.datastore === home.datastore && p.path.replace(/\/[^/]*$/, '') === dir && /\.nvram$/i.test(p.path))
      path = p.path;
  }
  await transport.put(datacenter, home.datastore, path, Readable.from([nvram]), nvram.length, op);
  return `[${home.datastore}] ${path}`;
}
