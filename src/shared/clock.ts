/** Injected time source, so tests can move time (lease expiry) without sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
