/**
 * One error type for all of Coffer, with a code from a closed table (docs/ERRORS.md).
 * Layers translate foreign errors (fs, SDKs, parsers) into CofferError at their boundary;
 * the CLI maps codes to exit codes in one place (cli/exit-codes.ts).
 */
export const ERROR_CODES = {
  USAGE: 'bad command line or option value',
  REPO_NOT_FOUND: 'the path or URL is not a Coffer repository',
  REPO_EXISTS: 'a repository already exists there',
  REPO_UNSUPPORTED: 'the repository uses a format version or algorithm this Coffer does not support',
  LOCKED: 'another Coffer process holds a conflicting lock',
  WRONG_KEY: 'no key of the repository opens with the given password',
  ACCESS_DENIED:
    'the storage service refused the credentials or their permissions (wrong account key, expired SAS, missing role)',
  KEY_IN_USE: 'the key cannot be removed (it is the last one or the one in use)',
  ARCHIVED: 'the data is in an archive tier and must be rehydrated before it can be read',
  IMMUTABLE: 'the object or restore point is under a retention lock or legal hold and cannot be deleted or changed',
  CORRUPT: 'repository data failed an integrity check',
  NOT_FOUND: 'the named object (restore point, disk, key, blob) does not exist',
  AMBIGUOUS: 'an id prefix matches more than one object',
  SOURCE_UNREADABLE: 'the backup source is missing, unreadable or invalid',
  SOURCE_UNSUPPORTED:
    'the backup source is a disk container Coffer does not read, or an encrypted one without a key (use --format ' +
    'raw to take its bytes as they are)',
  TARGET_EXISTS: 'the restore target exists (use --force to overwrite)',
  TARGET_UNWRITABLE: 'the restore target cannot be written',
  STORAGE_FULL: 'no space left on the storage device',
  IO: 'an I/O operation on the repository storage failed',
  TRANSIENT: 'a temporary storage failure; retrying may help',
  PARTIAL: 'the operation finished, but part of it failed',
  FS_CORRUPT: 'a partition table or guest filesystem in a backed-up disk is damaged or hostile',
  FS_UNSUPPORTED: 'a partition table, filesystem or feature of it that file-level restore cannot read',
  VSPHERE_AUTH: 'vCenter rejected the user name or password (or the session could not be re-established)',
  VSPHERE_TLS: "the vCenter server's TLS certificate does not match the pinned thumbprint or cannot be verified",
  VSPHERE_FAULT: 'vCenter reported a fault, a task failed, or its reply could not be understood',
  VSPHERE_DISK_LAYOUT:
    'a VM disk is not laid out as Coffer can read it, or fewer bytes than the disk were ' +
    'found (no restore point is made)',
  VSPHERE_TRANSPORT:
    'the chosen vSphere transport cannot read this disk or could not be set up (hot-add proxy, VDDK, vSAN over HTTP)',
  VSPHERE_CHECK_FAILED: '`coffer vsphere check` found something that stops a backup (privilege, transport, disks)',
  VSPHERE_QUIESCE: 'the guest could not be quiesced and --quiesce-required forbids a less consistent snapshot',
  VSPHERE_CAPTURE_LOST:
    'the snapshot being read was removed or changed by someone else during the backup (no restore point is made)',
  VSPHERE_UNSAFE_WRITE:
    'a restore would write through /folder to a file Coffer has not verified as a flat disk extent (refused)',
  VSPHERE_NFC: 'the NFC import (ImportVApp / HttpNfcLease) failed or its lease ended; the half-made VM was removed',
  VSPHERE_NETWORK: 'a NIC of the restored VM cannot be placed: unknown network, or a kept MAC address already in use',
  CANCELLED: 'the operation was cancelled',
  UNAUTHENTICATED: 'no valid credentials were presented (missing, unknown, expired or wrong token or password)',
  FORBIDDEN: 'the authenticated user or token lacks the role this operation needs',
  CONFLICT: 'the request conflicts with the current state (a name already taken, a job already finished)',
  NOT_AVAILABLE: 'the feature is not available in this build',
  CHECK_FAILED: 'a recoverability check of a restore point failed (a filesystem check found errors)',
  QEMU_MISSING: 'a boot check needs qemu-system-x86_64, which is not installed or does not start',
  GUEST_AGENT_PROTOCOL: 'the QEMU guest agent of a boot check answered with something that is not its protocol',
  INDICATORS_FOUND: 'file-level ransomware indicators were found in a restore point (notes, renames, encrypted files)',
  INTERNAL: 'an internal error (a bug): please report it',
  CATALOG_UNAVAILABLE: "the server's PostgreSQL catalog cannot be reached, refused the login or lost the connection",
  PROXY_REFUSED:
    'the server refused this backup proxy (token revoked, expired or not a proxy token; secrets over plain HTTP)',
  PROXY_VERSION: 'a backup proxy runs another Coffer version than the server (run the same version on both)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface CofferErrorOptions {
  hint?: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class CofferError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: CofferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CofferError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}), details: this.details };
  }
}

/** Wraps anything thrown into a CofferError; AbortErrors become CANCELLED. */
export function asCofferError(e: unknown, fallback: ErrorCode = 'INTERNAL'): CofferError {
  if (e instanceof CofferError) return e;
  if (e instanceof Error && (e.name === 'AbortError' || (e as NodeJS.ErrnoException).code === 'ABORT_ERR')) {
    return new CofferError('CANCELLED', 'cancelled', { cause: e });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new CofferError(fallback, message, { cause: e });
}
