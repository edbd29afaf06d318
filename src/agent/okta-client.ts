/**
 * Okta's management API as the agent uses it: SSWS token, `Link: rel="next"` paging, and rate limits honoured
 * the way Okta documents them: when X-Rate-Limit-Remaining reaches 0, or a 429 arrives, wait until
 * X-Rate-Limit-Reset before calling that endpoint family again.
 */
import { ExponentialBackoff, halfJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import { Pool } from "undici";
import type { Metrics } from "../observability/metrics.js";
import { Stopped } from "./errors.js";
import { parseJson } from "./json.js";
import { pause } from "./pause.js";

/** Retries of one Okta call: doubling from 250 ms to 30 s, jittered within each step's upper half (cockatiel). */
const RETRY = new ExponentialBackoff({ initialDelay: 250, maxDelay: 30_000, generator: halfJitterGenerator });
const RATE_LIMITED = new ExponentialBackoff({
  initialDelay: 1000,
  maxDelay: 60_000,
  generator: halfJitterGenerator,
});

export type OktaBucket = "logs" | "apps" | "users" | "groups";

export interface OktaPage<T> {
  items: T;
  next?: string;
}

export class OktaError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = "OktaError";
  }
}

function bucketOf(path: string): OktaBucket {
  if (path.startsWith("/api/v1/logs")) return "logs";
  if (path.startsWith("/api/v1/apps")) return "apps";
  if (path.startsWith("/api/v1/groups")) return "groups";
  return "users";
}

/** `<url>; rel="next", <url>; rel="self"` (one header or several). */
export function nextLink(header: string | string[] | undefined): string | undefined {
  const parts = (Array.isArray(header) ? header : header ? [header] : []).flatMap((h) =>
    h.split(/,(?=\s*<)/),
  );
  for (const p of parts) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(p);
    if (m) return m[1];
  }
  return undefined;
}

export interface OktaClientOptions {
  orgUrl: string;
  token: string;
  metrics: Metrics;
  logger: Logger;
  /** Aborted when the agent stops: no new call starts, and waits for a rate-limit reset end. */
  halt?: AbortSignal;
  /** Aborted to cut off the calls in flight. */
  cancel?: AbortSignal;
}

/** A wait before the next call of a bucket, for /status. */
export interface OktaWait {
  bucket: OktaBucket;
  until: string;
  /**
   * rate-limit: the budget is spent until its reset; 429: Okta refused without saying when to come back;
   * unreachable / 5xx: a back-off before retrying a call that failed; pace: a caught-up agent polling slower
   * so that the budget lasts until its reset.
   */
  reason: "rate-limit" | "429" | "unreachable" | "5xx" | "pace";
}

/** Below this share of a bucket's budget, calls are spread to last until its reset (paceMs). */
const PACE_BELOW = 0.25;
/**
 * Okta's rate-limit windows are one minute long, so a reset further away than that (plus the Date header's
 * one-second resolution) is a clock or header fault; waiting it out could stall the agent for hours.
 */
const MAX_RESET_AHEAD_MS = 61_000;
/** The Date header's resolution (one second) and a second for the answer's time in flight. */
const SKEW_RESOLUTION_MS = 2_000;

export class OktaClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly token: string;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  /** Epoch ms before which a bucket must not be called (its budget is spent). */
  private readonly blockedUntil = new Map<OktaBucket, number>();
  /** The last rate-limit headers seen per bucket; resetMs is on this host's clock (see resetOnLocalClock). */
  private readonly budget = new Map<OktaBucket, { limit: number; remaining: number; resetMs: number }>();
  /** The waits in progress: the agent's calls run in parallel, and each may be waiting for its own reason. */
  private readonly waits = new Set<OktaWait>();
  /** Called when a call starts waiting for a bucket's reset. */
  onWait: ((w: OktaWait) => void) | undefined;
  calls = 0;
  private closed = false;

  constructor(private readonly opts: OktaClientOptions) {
    this.origin = new URL(opts.orgUrl).origin;
    this.token = opts.token;
    this.metrics = opts.metrics;
    this.logger = opts.logger;
    this.pool = new Pool(this.origin, { connections: 8, keepAliveTimeout: 30_000 });
  }

  private checkRunning(): void {
    if (this.closed || this.opts.halt?.aborted || this.opts.cancel?.aborted)
      throw new Stopped("agent stopped");
  }

  private wait(ms: number): Promise<void> {
    return pause(ms, [this.opts.halt, this.opts.cancel], "waiting for Okta");
  }

  /** The rate-limit headers last seen, per endpoint family. */
  get budgets(): Partial<Record<OktaBucket, { limit: number; remaining: number; resetAt: string }>> {
    const out: Partial<Record<OktaBucket, { limit: number; remaining: number; resetAt: string }>> = {};
    for (const [bucket, b] of this.budget)
      out[bucket] = { limit: b.limit, remaining: b.remaining, resetAt: new Date(b.resetMs).toISOString() };
    return out;
  }

  /** The wait in progress for a rate limit, if any. */
  get waiting(): OktaWait | undefined {
    let last: OktaWait | undefined;
    for (const w of this.waits) if (!last || w.until > last.until) last = w;
    return last;
  }

  /**
   * How long to wait between calls of a bucket so that its budget lasts until the reset: 0 while more than a
   * quarter is left, else the time to the reset shared among the calls left. Okta advises staying clear of the
   * limit rather than meeting its 429s; an idle agent that polls faster than its budget allows slows down
   * instead of stalling until the next minute.
   */
  paceMs(bucket: OktaBucket, now = Date.now()): number {
    const b = this.budget.get(bucket);
    if (!b || b.limit <= 0 || b.remaining > b.limit * PACE_BELOW || b.resetMs <= now) return 0;
    return Math.ceil((b.resetMs - now) / Math.max(1, b.remaining));
  }

  /**
   * Waits `atLeastMs`, or paceMs when that is longer, shown in `waiting` as "pace" meanwhile. Not a stall
   * (onWait is not called): it is a slower poll, the agent having read to the end of the log.
   */
  async pace(bucket: OktaBucket, atLeastMs: number): Promise<void> {
    const pace = this.paceMs(bucket);
    return pace <= atLeastMs ? this.wait(atLeastMs) : this.waitFor(bucket, pace, "pace");
  }

  /**
   * Waits `ms` (a step of a wait that lasts until `until`, epoch ms), shown in `waiting` meanwhile; every
   * reason but pace is a stall, told to onWait.
   */
  private async waitFor(
    bucket: OktaBucket,
    ms: number,
    reason: OktaWait["reason"],
    until = Date.now() + ms,
  ): Promise<void> {
    const w: OktaWait = { bucket, until: new Date(until).toISOString(), reason };
    this.waits.add(w);
    if (reason !== "pace") this.onWait?.(w);
    try {
      await this.wait(ms);
    } finally {
      this.waits.delete(w);
    }
  }

  /** GET a path or a full `next` URL; retries 429s and transient failures until stopped. */
  async get<T>(pathOrUrl: string): Promise<OktaPage<T>> {
    const url = new URL(pathOrUrl, this.origin);
    if (url.origin !== this.origin)
      throw new OktaError(0, undefined, `refusing to follow a link off the org: ${url.origin}`);
    const path = url.pathname + url.search;
    const bucket = bucketOf(url.pathname);
    let delay = RETRY.next();
    /** A 429 without X-Rate-Limit-Reset (Okta always sends it; a proxy may not): longer steps, to 60 s. */
    let limited = RATE_LIMITED.next();
    for (;;) {
      this.checkRunning();
      const blocked = this.blockedUntil.get(bucket) ?? 0;
      const wait = blocked - Date.now();
      if (wait > 0) await this.waitFor(bucket, Math.min(wait, 5000), "rate-limit", blocked);
      if ((this.blockedUntil.get(bucket) ?? 0) > Date.now()) continue;
      let status: number;
      let headers: Record<string, string | string[] | undefined>;
      let text: string;
      /** When the answer's headers arrived: the Date header is compared with this, not with the body's end. */
      let answeredAt: number;
      try {
        const res = await this.pool.request({
          method: "GET",
          path,
          headers: {
            authorization: `SSWS ${this.token}`,
            accept: "application/json",
            "user-agent": "provisiond-agent",
          },
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
          ...(this.opts.cancel ? { signal: this.opts.cancel } : {}),
        });
        answeredAt = Date.now();
        status = res.statusCode;
        headers = res.headers;
        text = await res.body.text();
      } catch (err) {
        this.checkRunning();
        this.metrics.agentRetries.inc({ target: "okta", reason: "network" });
        this.logger.warn({ err: (err as Error).message, bucket }, "Okta unreachable; retrying");
        await this.waitFor(bucket, delay.duration, "unreachable");
        delay = delay.next(undefined);
        continue;
      }
      this.calls++;
      this.metrics.oktaCalls.inc({ bucket, status: String(status) });
      const remaining = Number(headers["x-rate-limit-remaining"]);
      const limit = Number(headers["x-rate-limit-limit"]);
      const reset = resetOnLocalClock(headers["x-rate-limit-reset"], headers.date, answeredAt);
      if (Number.isFinite(remaining)) this.metrics.oktaRateLimitRemaining.set({ bucket }, remaining);
      if (Number.isFinite(remaining) && Number.isFinite(limit) && reset !== undefined)
        this.budget.set(bucket, { limit, remaining, resetMs: reset });
      if (reset !== undefined && (status === 429 || remaining === 0)) {
        // A second of slack covers the Date header's one-second resolution.
        this.blockedUntil.set(bucket, Math.max(reset + 1000, Date.now() + 250));
        // Info, not warn: waiting for the reset is what Okta asks of a client, not a fault.
        this.logger.info(
          { bucket, status, remaining, resetAt: new Date(reset).toISOString() },
          "Okta rate limit reached; waiting for the reset",
        );
      }
      if (status === 429) {
        this.metrics.agentRetries.inc({ target: "okta", reason: "429" });
        // A reset already past (a proxy's own 429, a bad header) is no reset: retrying at once would spin.
        if (reset === undefined || reset + 1000 <= Date.now()) {
          await this.waitFor(bucket, limited.duration, "429");
          limited = limited.next(undefined);
        }
        continue;
      }
      if (status >= 500) {
        this.metrics.agentRetries.inc({ target: "okta", reason: String(status) });
        await this.waitFor(bucket, delay.duration, "5xx");
        delay = delay.next(undefined);
        continue;
      }
      if (status >= 400) {
        const b = parseJson(text) as { errorCode?: string; errorSummary?: string } | undefined;
        throw new OktaError(
          status,
          b?.errorCode,
          `${status} ${b?.errorCode ?? ""} ${b?.errorSummary ?? text.slice(0, 200)}`,
        );
      }
      const body = parseJson(text) as T;
      if (text && body === undefined)
        throw new OktaError(status, undefined, `${status} answer to ${url.pathname} is not JSON`);
      const next = nextLink(headers.link);
      return next ? { items: body, next } : { items: body };
    }
  }

  /** Every item of a paged list, following `next` links from `first`. */
  async getAll<T>(first: string): Promise<T[]> {
    const out: T[] = [];
    let next: string | undefined = first;
    while (next) {
      const page: OktaPage<T[]> = await this.get<T[]>(next);
      out.push(...page.items);
      next = page.next;
    }
    return out;
  }

  /** Ids of the groups pushed to the app by an active mapping. */
  async pushedGroups(appId: string): Promise<Set<string>> {
    const mappings = (
      await this.get<{ sourceGroupId: string; status: string }[]>(`/api/v1/apps/${appId}/group-push/mappings`)
    ).items;
    return new Set(mappings.filter((m) => m.status === "ACTIVE").map((m) => m.sourceGroupId));
  }

  /** A group's name and the ids of all its members. */
  async groupWithMembers(groupId: string): Promise<{ name: string; memberIds: string[] }> {
    const group = (await this.get<{ profile: { name: string } }>(`/api/v1/groups/${groupId}`)).items;
    const members = await this.getAll<{ id: string }>(`/api/v1/groups/${groupId}/users?limit=1000`);
    return { name: group.profile.name, memberIds: members.map((u) => u.id) };
  }

  /** Ids of the groups a user belongs to (GET /api/v1/users/{id}/groups). */
  async userGroups(userId: string): Promise<string[]> {
    const groups = await this.getAll<{ id: string }>(`/api/v1/users/${encodeURIComponent(userId)}/groups`);
    return groups.map((g) => g.id);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }
}

/**
 * X-Rate-Limit-Reset (epoch seconds on Okta's clock) as epoch ms on this host's clock: shifted by how far
 * Okta's Date header is from this host's now, and never more than a window ahead. A host whose clock is
 * behind Okta's would otherwise wait the difference on top of every reset, and one far behind would stall.
 */
export function resetOnLocalClock(
  resetHeader: string | string[] | undefined,
  dateHeader: string | string[] | undefined,
  now: number,
): number | undefined {
  // Number("") is 0: an empty header would read as a reset at the epoch.
  if (typeof resetHeader !== "string" || resetHeader.trim() === "") return undefined;
  const reset = Number(resetHeader);
  if (!Number.isFinite(reset) || reset <= 0) return undefined;
  const okNow = typeof dateHeader === "string" ? Date.parse(dateHeader) : Number.NaN;
  // The Date header is truncated to the second: a difference within that (and the answer's flight) is no
  // measured skew, and shifting by it would add up to a second to every wait between clocks that agree.
  const skew = Number.isFinite(okNow) && Math.abs(okNow - now) > SKEW_RESOLUTION_MS ? okNow - now : 0;
  return Math.min(reset * 1000 - skew, now + MAX_RESET_AHEAD_MS);
}
