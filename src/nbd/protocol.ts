/** NBD protocol constants (NetworkBlockDevice/nbd doc/proto.md). All integers on the wire are big-endian. */
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const FLAG_FIXED_NEWSTYLE = 1;
export const FLAG_NO_ZEROES = 2;
export const FLAG_C_FIXED_NEWSTYLE = 1;
export const FLAG_C_NO_ZEROES = 2;

export const OPT_ABORT = 2;
export const OPT_STARTTLS = 5;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_LIST_META_CONTEXT = 9;
export const OPT_SET_META_CONTEXT = 10;

export const REP_ACK = 1;
export const REP_SERVER = 2;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_FLAG_ERROR = 0x80000000;
export const REP_ERR_UNSUP = REP_FLAG_ERROR + 1;
export const REP_ERR_POLICY = REP_FLAG_ERROR + 2;
export const REP_ERR_INVALID = REP_FLAG_ERROR + 3;
export const REP_ERR_PLATFORM = REP_FLAG_ERROR + 4;
export const REP_ERR_TLS_REQD = REP_FLAG_ERROR + 5;
export const REP_ERR_UNKNOWN = REP_FLAG_ERROR + 6;
export const REP_ERR_SHUTDOWN = REP_FLAG_ERROR + 7;
export const REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR + 8;
export const REP_ERR_TOO_BIG = REP_FLAG_ERROR + 9;

export const INFO_EXPORT = 0;
export const INFO_NAME = 1;
export const INFO_DESCRIPTION = 2;
export const INFO_BLOCK_SIZE = 3;

export const TFLAG_HAS_FLAGS = 1 << 0;
export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_SEND_FLUSH = 1 << 2;
export const TFLAG_SEND_FUA = 1 << 3;
export const TFLAG_ROTATIONAL = 1 << 4;
export const TFLAG_SEND_TRIM = 1 << 5;
export const TFLAG_SEND_WRITE_ZEROES = 1 << 6;
export const TFLAG_SEND_DF = 1 << 7;
export const TFLAG_CAN_MULTI_CONN = 1 << 8;
export const TFLAG_SEND_CACHE = 1 << 10;

export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_CACHE = 5;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;

export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;

export const REPLY_FLAG_DONE = 1;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR = (1 << 15) + 1;
export const REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** base:allocation status bits. */
export const STATE_HOLE = 1;
export const STATE_ZERO = 2;
/** qemu:dirty-bitmap:NAME status bit. */
export const STATE_DIRTY = 1;

export const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

/** Our limits on what a server may send (hostile or buggy servers must not make us allocate or loop forever). */
export const MAX_OPTION_REPLY_BYTES = 64 * 1024;
export const MAX_STRUCTURED_CHUNK_BYTES = 64 * 1024 * 1024;
export const MAX_READ_BYTES = 32 * 1024 * 1024;
