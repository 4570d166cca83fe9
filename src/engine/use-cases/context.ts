import type { Op } from '../../shared/index.js';
import type { CodecPool } from '../codec-pool.js';
import type { CodecParams } from '../codec-protocol.js';

/**
 * What every use case gets from its caller (CLI, server, job runner): where codec workers come from and the
 * cancellation signal. The use case starts the pool for the repository it works on and closes it when done; a caller
 * may hand out a pool it started earlier (the CLI starts the workers while scrypt derives the key).
 */
export interface UseCaseContext extends Op {
  createPool(params: CodecParams): CodecPool;
}

/** Runs fn with a codec pool for these parameters and closes the pool afterwards, whatever happens. */
export async function withCodecPool<T>(
  ctx: UseCaseContext,
  params: CodecParams,
  fn: (pool: CodecPool) => Promise<T>,
): Promise<T> {
  const pool = ctx.createPool(params);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

/** Progress in bytes (backup, restore) or items (verify: chunks; prune: objects). */
export interface ProgressEvent {
  type: 'progress';
  unit: 'bytes' | 'items';
  done: number;
  /** 0 when not known yet (prune) */
  total: number;
  phase?: string;
}

/** Something the user should know; the operation goes on. */
export interface WarningEvent {
  type: 'warning';
  message: string;
}

/** A sink of a use case's typed events; called synchronously, must not throw. */
export type EventSink<E> = (event: E) => void;
