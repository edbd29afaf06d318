/**
 * The clock the election's timing runs on. Lease health is measured with performance.now(), which never steps:
 * a wall-clock step (NTP, an operator) cannot lengthen or shorten a term. Only the rate at which clocks tick
 * matters, which is the assumption the whole election rests on. Tests pass a clock of their own.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences mean anything. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
