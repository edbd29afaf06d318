/**
 * The opossum circuit breaker every store call goes through, with its state mirrored into metrics and its
 * transitions logged; and the store's reachability, logged once per change (an outage and its cause, then the
 * recovery), never once per request.
 */
import CircuitBreaker from "opossum";
import pino, { type Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { isTransient, isUnreachable, StoreUnavailable, storeCause } from "./errors.js";

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

/** Where the store is and what to log through; without it nothing is logged. */
export interface BreakerLogging {
  logger: Logger;
  /** The store's `host:port` (or SQLite file), never its URL: that carries the password. */
  endpoint: string;
}

/**
 * Whether the store answers: "store unreachable" with the cause at the first failure that says it cannot be
 * reached, "store recovered" at the first success after it. Fed by every store call's own outcome (also
 * one the breaker already gave up waiting for, such as a connect timeout) and by the readiness pings.
 */
export class StoreReachability {
  private downSince: number | undefined;
  private cause: string | undefined;

  constructor(private readonly log: BreakerLogging) {}

  failed(err: unknown): void {
    if (!isUnreachable(err) || this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.cause = storeCause(err, this.log.endpoint);
    this.log.logger.warn(
      { store: this.log.endpoint, cause: this.cause, variable: "PROVISIOND_STORE_URL" },
      `store unreachable: ${this.cause}; SCIM requests get 503 until it answers`,
    );
  }

  succeeded(): void {
    if (this.downSince === undefined) return;
    const seconds = (Date.now() - this.downSince) / 1000;
    this.log.logger.info(
      { store: this.log.endpoint, downSeconds: seconds, cause: this.cause },
      `store recovered: ${this.log.endpoint} answers again after ${seconds.toFixed(1)} s (was ${this.cause})`,
    );
    this.downSince = undefined;
    this.cause = undefined;
  }

  /** Watches one call to the store, to its real end. */
  watch<T>(p: Promise<T>): Promise<T> {
    p.then(
      () => this.succeeded(),
      (err: unknown) => this.failed(err),
    );
    return p;
  }
}

const SILENT: BreakerLogging = { logger: pino({ level: "silent" }), endpoint: "store" };

export class StoreBreaker {
  private readonly cb: CircuitBreaker<[Action], unknown>;
  private lastChange = new Date().toISOString();
  readonly reachability: StoreReachability;
  /** The last failure the breaker counted, for the line that says why it opened. */
  private lastFailure: unknown;

  constructor(
    readonly opts: BreakerOptions,
    metrics: Metrics,
    name = "store",
    log: BreakerLogging = SILENT,
  ) {
    this.reachability = new StoreReachability(log);
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
    const { logger, endpoint } = log;
    const resetS = this.retryAfterSeconds;
    let previous: BreakerState = "closed";
    this.cb.on("open", () => {
      const cause = this.describe(this.lastFailure, endpoint);
      if (previous === "halfOpen")
        logger.info(
          { breaker: name, state: "open", store: endpoint, cause },
          `store circuit breaker open again: the trial call failed (${cause}); next trial in ${resetS} s`,
        );
      else
        logger.warn(
          { breaker: name, state: "open", store: endpoint, cause },
          `store circuit breaker open: too many store calls failed (last: ${cause}); SCIM requests get 503 for ${resetS} s, then one trial call`,
        );
      previous = "open";
      transition("open", "open")();
    });
    this.cb.on("halfOpen", () => {
      logger.info(
        { breaker: name, state: "halfOpen", store: endpoint },
        "store circuit breaker half-open: letting one trial call through",
      );
      previous = "halfOpen";
      transition("halfOpen", "halfOpen")();
    });
    this.cb.on("close", () => {
      logger.info(
        { breaker: name, state: "closed", store: endpoint },
        "store circuit breaker closed: the store answers, requests flow again",
      );
      previous = "closed";
      transition("closed", "close")();
    });
    this.cb.on("reject", () => metrics.breakerEvents.inc({ breaker: name, event: "reject" }));
    this.cb.on("timeout", (err: unknown) => {
      this.lastFailure = err;
      metrics.breakerEvents.inc({ breaker: name, event: "timeout" });
    });
    this.cb.on("failure", (err: unknown) => {
      this.lastFailure = err;
      metrics.breakerEvents.inc({ breaker: name, event: "failure" });
    });
  }

  /** A counted failure, for a log line. */
  private describe(err: unknown, endpoint: string): string {
    const e = err as { message?: unknown } | undefined;
    if (typeof e?.message === "string" && e.message.startsWith("Timed out after"))
      return `no answer within ${this.opts.timeoutMs} ms from ${endpoint}`;
    if (err instanceof Error && err.name === "DeadlineExceeded")
      return `a transaction ran past ${this.opts.timeoutMs} ms on ${endpoint}`;
    return err === undefined ? "unknown" : storeCause(err, endpoint);
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
      return (await this.cb.fire(() => this.reachability.watch(action()))) as T;
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
