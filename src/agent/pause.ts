import { setTimeout as sleep } from "node:timers/promises";
import { Stopped } from "./errors.js";

/**
 * Waits `ms`, unless one of `signals` aborts first (the node stopping, or the term ending): then throws
 * Stopped, so a back-off never keeps a finished term's agent alive, nor the next term waiting behind it.
 */
export async function pause(ms: number, signals: (AbortSignal | undefined)[], what: string): Promise<void> {
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  try {
    await sleep(ms, undefined, live.length ? { signal: AbortSignal.any(live) } : {});
  } catch {
    throw new Stopped(`agent stopped while ${what}`);
  }
}
