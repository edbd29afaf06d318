/**
 * Okta-style rate limits: a budget per endpoint family per minute, reported on every response in
 * X-Rate-Limit-Limit / -Remaining / -Reset (epoch seconds), and 429 with error E0000047 past it.
 * A "storm" answers the next N calls with 429 regardless, for back-off tests.
 */
export type Bucket = "logs" | "apps" | "users" | "groups";

export interface RateLimitConfig {
  enabled: boolean;
  perMinute: Record<Bucket, number>;
}

/** Defaults in the spirit of Okta's published org-wide limits for these endpoints. */
export const DEFAULT_LIMITS: RateLimitConfig = {
  enabled: true,
  perMinute: { logs: 120, apps: 500, users: 600, groups: 500 },
};

export interface Verdict {
  allowed: boolean;
  headers: Record<string, string>;
}

export class RateLimiter {
  private windows = new Map<Bucket, { start: number; used: number }>();
  private storm = 0;
  readonly calls: Record<Bucket, number> = { logs: 0, apps: 0, users: 0, groups: 0 };
  rejected = 0;

  constructor(public config: RateLimitConfig = structuredClone(DEFAULT_LIMITS)) {}

  startStorm(n: number): void {
    this.storm = n;
  }

  take(bucket: Bucket, now = Date.now()): Verdict {
    this.calls[bucket]++;
    const limit = this.config.perMinute[bucket];
    let w = this.windows.get(bucket);
    if (!w || now - w.start >= 60_000) {
      w = { start: now - (now % 60_000), used: 0 };
      this.windows.set(bucket, w);
    }
    const reset = Math.ceil((w.start + 60_000) / 1000);
    const stormHit = this.storm > 0;
    if (stormHit) this.storm--;
    const over = this.config.enabled && w.used >= limit;
    if (!stormHit && !over) w.used++;
    const remaining = this.config.enabled ? Math.max(0, limit - w.used) : limit;
    const allowed = !stormHit && !over;
    if (!allowed) this.rejected++;
    return {
      allowed,
      headers: {
        "X-Rate-Limit-Limit": String(limit),
        "X-Rate-Limit-Remaining": String(allowed ? remaining : 0),
        "X-Rate-Limit-Reset": String(stormHit ? Math.ceil(now / 1000) + 1 : reset),
      },
    };
  }
}
