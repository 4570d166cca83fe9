/** Options every public async operation accepts. */
export interface Op {
  signal?: AbortSignal | undefined;
}
