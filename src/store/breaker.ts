/** The opossum circuit breaker every store call goes through, with its state mirrored into metrics. */
import CircuitBreaker from "opossum";
import type { Metrics } from "../observability/metrics.js";
import { isTransient, StoreUnavailable } from "./errors.js";

export interface BreakerOptions {
  /** ms before a store call counts as failed. */
  timeoutMs: number;
  /** Failure percentage, within the rolling window, that opens the breaker. */
  errorThresholdPercentage: number;
  /** Calls in the window before the percentage counts at all. */
  volumeThreshold: number;
  /** ms the breaker stays open before it lets one trial call through. */
  resetTimeoutMs: number;
  rollingWindowMs: number;
}

export type BreakerState = "closed" | "halfOpen" | "open";

type Action = () => Promise<unknown>;

export class StoreBreaker {
  private readonly cb: CircuitBreaker<[Action], unknown>;
  private lastChange = new Date().toISOString();

  constructor(
    readonly opts: BreakerOptions,
    metrics: Metrics,
    name = "store",
  ) {
    this.cb = new CircuitBreaker((action: Action) => action(), {
      timeout: opts.timeoutMs,
      errorThresholdPercentage: opts.errorThresholdPercentage,
      volumeThreshold: opts.volumeThreshold,
      resetTimeout: opts.resetTimeoutMs,
      rollingCountTimeout: opts.rollingWindowMs,
      // Refusals (a taken userName, a missing resource, bad input) say nothing about the store's health.
      errorFilter: (err: unknown) => !isTransient(err),
    });
    metrics.breakerState.set({ breaker: name }, 0);
    const gauge = { closed: 0, halfOpen: 1, open: 2 } as const;
    const transition = (state: BreakerState, event: string) => () => {
      this.lastChange = new Date().toISOString();
      metrics.breakerState.set({ breaker: name }, gauge[state]);
      metrics.breakerEvents.inc({ breaker: name, event });
    };
    this.cb.on("open", transition("open", "open"));
    this.cb.on("halfOpen", transition("halfOpen", "halfOpen"));
    this.cb.on("close", transition("closed", "close"));
    this.cb.on("reject", () => metrics.breakerEvents.inc({ breaker: name, event: "reject" }));
    this.cb.on("timeout", () => metrics.breakerEvents.inc({ breaker: name, event: "timeout" }));
    this.cb.on("failure", () => metrics.breakerEvents.inc({ breaker: name, event: "failure" }));
  }

  get state(): BreakerState {
    return this.cb.opened ? "open" : this.cb.halfOpen ? "halfOpen" : "closed";
  }

  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.opts.resetTimeoutMs / 1000));
  }

  status() {
    const s = this.cb.stats;
    return {
      state: this.state,
      since: this.lastChange,
      window: {
        fires: s.fires,
        failures: s.failures,
        timeouts: s.timeouts,
        rejects: s.rejects,
        successes: s.successes,
      },
    };
  }

  async fire<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.cb.fire(action)) as T;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EOPENBREAKER") {
        throw new StoreUnavailable(
          "the app store is unavailable (circuit breaker open)",
          this.retryAfterSeconds,
          err,
        );
      }
      if (code === "ETIMEDOUT" && (err as Error).message.startsWith("Timed out after")) {
        throw new StoreUnavailable(
          `the app store did not answer within ${this.opts.timeoutMs} ms`,
          this.retryAfterSeconds,
          err,
        );
      }
      if (isTransient(err) && !(err instanceof StoreUnavailable)) {
        throw new StoreUnavailable("the app store is unavailable", this.retryAfterSeconds, err);
      }
      throw err;
    }
  }

  shutdown(): void {
    this.cb.shutdown();
  }
}
