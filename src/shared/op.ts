/** Options every public async operation accepts. */
export interface Op {
  signal?: AbortSignal | undefined;
}

export function throwIfAborted(op: Op | undefined): void {
  op?.signal?.throwIfAborted();
}
