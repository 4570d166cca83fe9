/**
 * Cooperative long loops (issue 21, item 10): guest filesystem work over cached blocks runs entirely in promise
 * microtasks, so a 20,000-entry directory would hold the event loop (and every other request of the server) until it
 * is done. A loop calls `await tick()` once per entry or block; every `every` calls it waits for one turn of the event
 * loop (setImmediate), so timers, sockets and other requests run in between. Between those turns it costs nothing.
 */
export const COOPERATE_EVERY = 256;

/** One turn of the event loop: pending I/O callbacks and timers run before this resolves. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A counter that yields to the event loop every `every` calls (a fresh one per loop, or shared by nested loops). */
export function cooperative(every = COOPERATE_EVERY): () => Promise<void> | undefined {
  let n = 0;
  return () => (++n % every === 0 ? yieldToLoop() : undefined);
}
