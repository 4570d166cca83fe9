import { CofferError, type Op } from '../../shared/index.js';
import type { BlockSource } from '../block-source.js';

/**
 * A disk held in memory, for tests of the engine (backup, restore, GC). `failAfterReads`: reads past that count fail
 * with SOURCE_UNREADABLE (a disk that breaks mid-backup); `reads` counts them.
 */
export class BufferSource implements BlockSource {
  reads = 0;
  constructor(
    readonly data: Buffer,
    readonly uri = 'mem://disk',
    private readonly failAfterReads = Number.POSITIVE_INFINITY,
  ) {}
  get sizeBytes() {
    return this.data.length;
  }
  async read(offset: number, length: number, into: Buffer, op?: Op) {
    op?.signal?.throwIfAborted();
    if (++this.reads > this.failAfterReads) throw new CofferError('SOURCE_UNREADABLE', 'simulated read failure');
    this.data.copy(into, 0, offset, offset + length);
  }
  async close() {}
}
