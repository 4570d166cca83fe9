import type { ErrorCode } from '../shared/index.js';

/** The one place where error codes become process exit codes (docs/ERRORS.md). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  INTERNAL: 1,
  IO: 1,
  TRANSIENT: 1,
  USAGE: 2,
  AMBIGUOUS: 2,
  REPO_NOT_FOUND: 3,
  LOCKED: 4,
  WRONG_KEY: 5,
  CORRUPT: 6,
  PARTIAL: 7,
  SOURCE_UNREADABLE: 8,
  NOT_FOUND: 9,
  STORAGE_FULL: 10,
  TARGET_EXISTS: 11,
  TARGET_UNWRITABLE: 11,
  REPO_UNSUPPORTED: 12,
  REPO_EXISTS: 13,
  KEY_IN_USE: 14,
  IMMUTABLE: 15,
  FS_CORRUPT: 16,
  FS_UNSUPPORTED: 17,
  UNAUTHENTICATED: 18,
  FORBIDDEN: 19,
  CONFLICT: 20,
  NOT_AVAILABLE: 21,
  VSPHERE_AUTH: 22,
  VSPHERE_TLS: 23,
  VSPHERE_FAULT: 24,
  ACCESS_DENIED: 25,
  ARCHIVED: 26,
  SOURCE_UNSUPPORTED: 40,
  CANCELLED: 130,
};

export const EXIT_OK = 0;
