/**
 * Bounded concurrency with sticky failure: `run` waits for a free slot and starts the task; once any task has
 * failed, `run` and `drain` throw that first error and no new task starts.
 */
export class TaskWindow {
  private readonly running = new Set<Promise<void>>();
  private error: { e: unknown } | undefined;

  constructor(readonly limit: number) {
    if (limit < 1) throw new RangeError('limit must be >= 1');
  }

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit && !this.error) await Promise.race(this.running);
    if (this.error) throw this.error.e;
    const p: Promise<void> = task()
      .catch((e: unknown) => {
        this.error ??= { e };
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** True once a task has failed (later work can stop early). */
  get failed(): boolean {
    return this.error !== undefined;
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
    if (this.error) throw this.error.e;
  }

  /** Waits for running tasks without throwing (cleanup after a failure elsewhere). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}
