/**
 * The event processor of one term. It begins by raising the store's fence to its term and finding its place
 * in the stream (stored once, by the cluster's first primary). Then, round after round: read System Log pages
 * from the cursor, read the current state of every user and group they mention (by page when many, so a
 * burst costs few Okta calls), apply it to the connector with bounded concurrency (each user's requests in
 * order), and only then move the cursor, through the guarded transaction. Anything that fails transiently is
 * retried: the cursor does not move past an event until it has applied, or been recorded as a dead letter.
 *
 * An instance belongs to one term (its Leadership) and writes only while that term is current. When it fails
 * it has nothing left in flight (forEachLimit, settleAll), so a retry never overlaps with its own last attempt.
 */
import type { Logger } from "pino";
import type { Cursor, CursorValue } from "../cluster/cursor.js";
import type { DeadLetters } from "../cluster/dead-letters.js";
import type { Leadership } from "../cluster/leadership.js";
import type { Metrics } from "../observability/metrics.js";
import {
  applyGroup,
  applyUser,
  findUser,
  findUsers,
  type OktaAppUser,
  planUser,
  type UserPlan,
} from "./apply.js";
import { Refused, Stopped } from "./errors.js";
import { EventLag } from "./event-lag.js";
import { GROUP_EVENTS, logFilter, MEMBERSHIP_EVENTS, USER_EVENTS } from "./event-types.js";
import { forEachLimit, settleAll } from "./for-each-limit.js";
import { type OktaClient, OktaError } from "./okta-client.js";
import { reconcile } from "./reconcile.js";
import type { BulkResult, ScimClient } from "./scim-client.js";

export interface LogEvent {
  uuid: string;
  published: string;
  eventType: string;
  target?: { id: string; type: string }[];
}

export interface AgentOptions {
  /** The term this agent works for. */
  lead: Leadership;
  /** Aborted when the agent must stop taking work (its node is stopping). */
  halt: AbortSignal;
  okta: OktaClient;
  appId: string;
  scim: ScimClient;
  cursor: Cursor;
  deadLetters: DeadLetters;
  concurrency: number;
  /** Writes per /Bulk request when the connector supports it (0: one request per write). */
  bulkOperations: number;
  pollMs: number;
  pageSize: number;
  maxBatchEvents: number;
  /** Where a new cluster starts reading (ISO time); unset: when its first primary is elected. */
  startAt: string | undefined;
  /** More distinct users than this in one round are read by listing the app's users page by page. */
  listThreshold: number;
  /** Reconcile with Okta this often once caught up (0: never). */
  reconcileEveryMs?: number;
  /** Called once, when this term has processed its first event. */
  onFirstApplied?: () => void;
  /** Called after every round that went through (an empty poll included). */
  onRoundDone?: () => void;
  logger: Logger;
  metrics: Metrics;
}

const USER_TYPES = new Set<string>(USER_EVENTS);
const GROUP_TYPES = new Set<string>(GROUP_EVENTS);

interface UserWork {
  oktaId: string;
  evs: LogEvent[];
  /** The newest event about the user: the stem of its Idempotency-Keys. */
  key: string;
  plan: UserPlan;
}

/** A group to converge, and the events (or the user's event key) it does so for. */
interface GroupWork {
  evs: LogEvent[];
  key: string;
}

/** Splits writes into bulks of at most `maxOps` operations and (with room for the envelope) `maxBytes`. */
function bulkChunks(writes: UserWork[], maxOps: number, maxBytes: number): UserWork[][] {
  const chunks: UserWork[][] = [];
  let cur: UserWork[] = [];
  let bytes = 0;
  for (const w of writes) {
    const size = JSON.stringify(w.plan.request).length + 64;
    if (cur.length && (cur.length >= maxOps || bytes + size > maxBytes * 0.9)) {
      chunks.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(w);
    bytes += size;
  }
  if (cur.length) chunks.push(cur);
  return chunks;
}

/**
 * An Okta answer about one user or group that no retry will change (the subject is gone, or the request about
 * it is invalid): its events become dead letters. Anything else (401, 403, a 4xx about a listing) is a
 * problem of the whole agent, which the runner shows and retries.
 */
function subjectRefused(err: unknown): boolean {
  return err instanceof OktaError && [400, 404, 410].includes(err.status);
}

export class Agent {
  cursor: CursorValue | undefined;
  /** How far behind the log this term is (one definition for /status and the gauge: event-lag.ts). */
  lag = new EventLag(undefined);
  private fenceRaised = false;
  private firstApplied = false;
  private lastReconcile = Date.now();

  /** Aborted when this agent may start no more work: its term ended or its node is stopping. */
  private readonly stop: AbortSignal;

  constructor(private readonly opts: AgentOptions) {
    this.stop = AbortSignal.any([opts.halt, opts.lead.signal]);
    // A wait for Okta (a rate limit, an outage) means the log may be growing unread.
    opts.okta.onWait = () => this.lag.stalled();
  }

  /** What the Okta client is waiting for, if anything (a rate limit's reset). */
  get waiting() {
    return this.opts.okta.waiting;
  }

  /** Okta's rate-limit budgets as last reported, per endpoint family. */
  get oktaBudgets() {
    return this.opts.okta.budgets;
  }

  /** The term this agent works for. */
  get lead(): Leadership {
    return this.opts.lead;
  }

  /** How forEachLimit runs for this agent: it stops with the agent, and says when a failure leaves work to wait for. */
  private limitOptions() {
    return {
      signal: this.stop,
      onFailure: (err: unknown, inFlight: number) =>
        this.opts.logger.warn(
          { err: (err as Error).message, inFlight },
          "a request failed; waiting for the requests in flight before the round is retried",
        ),
    };
  }

  private get active(): boolean {
    return !this.opts.halt.aborted && this.opts.lead.isCurrent();
  }

  private ensureActive(): void {
    if (!this.active) throw new Stopped(`term ${this.opts.lead.term ?? "(standalone)"} is over or stopping`);
  }

  private firstUrl(startAt: string): string {
    const p = new URLSearchParams({
      since: startAt,
      sortOrder: "ASCENDING",
      limit: String(this.opts.pageSize),
      filter: logFilter(),
    });
    return `/api/v1/logs?${p}`;
  }

  /**
   * Begins the term, then runs rounds until the term ends or the node stops (resolves), or something fails
   * (rejects, with nothing of this call still in flight).
   */
  async run(): Promise<void> {
    try {
      await this.rounds();
    } catch (err) {
      this.lag.stalled();
      throw err;
    }
  }

  private async rounds(): Promise<void> {
    this.ensureActive();
    if (!this.fenceRaised) {
      // Before the first read: older terms' writes in flight finish first, and any later one is refused.
      if (!(await this.opts.scim.raiseFence()) && this.opts.lead.term !== undefined)
        this.opts.logger.warn(
          "the connector has no fence (not provisiond?); writes of old terms are not refused",
        );
      this.fenceRaised = true;
    }
    const startAt = this.opts.startAt ?? new Date().toISOString();
    const stored = await this.opts.cursor.start(this.opts.lead, {
      position: this.firstUrl(startAt),
      updatedAt: new Date().toISOString(),
      ...(this.opts.lead.term !== undefined ? { term: this.opts.lead.term } : {}),
    });
    if (!stored) return; // the term ended before it could read where to start
    this.cursor = stored;
    // A retried run of the same term keeps what it knew; a new one knows everything before the cursor (or,
    // in a new cluster, before its starting position) is applied.
    if (this.lag.appliedThrough === null)
      this.lag = new EventLag(stored.published ?? sinceOf(stored.position));
    let position = stored.position;
    this.opts.logger.info(
      { position: stored.published ? `after ${stored.published}` : "the cluster's starting position" },
      "agent started",
    );
    while (this.active) {
      const { events, next, caughtUp, endAskedAt } = await this.fetchRound(position);
      this.lag.read(events, endAskedAt);
      this.ensureActive();
      if (events.length) {
        await this.applyRound(events);
        this.ensureActive();
        const last = events[events.length - 1]!;
        const value: CursorValue = {
          position: next,
          published: last.published,
          updatedAt: new Date().toISOString(),
          ...(this.opts.lead.term !== undefined ? { term: this.opts.lead.term } : {}),
        };
        if (!(await this.opts.cursor.advance(this.opts.lead, value))) {
          this.opts.logger.warn({ term: this.opts.lead.term }, "cursor not advanced: this term is over");
          return;
        }
        this.cursor = value;
        this.lag.applied(last.published);
        this.opts.metrics.cursorTimestamp.set(Date.parse(last.published) / 1000);
      }
      position = next;
      this.opts.onRoundDone?.();
      if (
        caughtUp &&
        this.opts.reconcileEveryMs &&
        Date.now() - this.lastReconcile >= this.opts.reconcileEveryMs
      ) {
        await reconcile({
          okta: this.opts.okta,
          scim: this.opts.scim,
          appId: this.opts.appId,
          concurrency: this.opts.concurrency,
          logger: this.opts.logger,
        });
        this.lastReconcile = Date.now();
      }
      // Once caught up, poll at the configured pace, or slower when the System Log's budget would not last
      // until its reset at that pace (okta-client.ts, paceMs).
      if (caughtUp) await this.opts.okta.pace("logs", this.opts.pollMs).catch(() => undefined);
    }
  }

  /** The failover clock stops at the first event this term has processed. */
  private markFirstApplied(): void {
    if (this.firstApplied) return;
    this.firstApplied = true;
    this.opts.onFirstApplied?.();
  }

  private async fetchRound(
    start: string,
  ): Promise<{ events: LogEvent[]; next: string; caughtUp: boolean; endAskedAt: number | undefined }> {
    const events: LogEvent[] = [];
    let next = start;
    for (;;) {
      const askedAt = Date.now();
      const page = await this.opts.okta.get<LogEvent[]>(next);
      events.push(...page.items);
      if (page.next) next = page.next;
      const full = page.items.length >= this.opts.pageSize;
      if (!full || !page.next) return { events, next, caughtUp: true, endAskedAt: askedAt };
      if (events.length >= this.opts.maxBatchEvents || !this.active)
        return { events, next, caughtUp: false, endAskedAt: undefined };
    }
  }

  private async applyRound(events: LogEvent[]): Promise<void> {
    // The newest event about each user decides its idempotency key; all of its events share the outcome.
    const users = new Map<string, LogEvent[]>();
    const groups = new Map<string, GroupWork>();
    for (const e of events) {
      const userTarget = e.target?.find((t) => t.type === "User");
      const groupTarget = e.target?.find((t) => t.type === "UserGroup");
      const appTarget = e.target?.find((t) => t.type === "AppInstance");
      if (appTarget && appTarget.id !== this.opts.appId) {
        this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
        continue;
      }
      if (GROUP_TYPES.has(e.eventType) && groupTarget) {
        // A group event converges the whole group, its membership included, after the round's users.
        const g = groups.get(groupTarget.id) ?? { evs: [], key: e.uuid };
        g.evs.push(e);
        g.key = e.uuid;
        groups.set(groupTarget.id, g);
        continue;
      }
      if (USER_TYPES.has(e.eventType) && userTarget)
        users.set(userTarget.id, [...(users.get(userTarget.id) ?? []), e]);
      else this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
    }
    const scimIds = new Map<string, string>();
    const joined: UserWork[] = [];
    const entries = [...users.entries()];
    // A big round reads Okta by listing every app user, which takes a while; the users of its oldest events
    // go first, read one by one, so they are applied (and a new primary's first event lands) without waiting.
    const head = entries.length > this.opts.listThreshold ? entries.slice(0, this.opts.concurrency) : [];
    if (head.length) joined.push(...(await this.applyUsers(head, scimIds, false)));
    joined.push(...(await this.applyUsers(entries.slice(head.length), scimIds, true)));
    // Users who entered or left the app change the membership of the pushed groups that contain them, even
    // when those groups' own events came in an earlier round (Okta often logs the group membership first).
    if (joined.length) await this.addGroupsOf(joined, groups);
    if (groups.size) await this.applyGroups(groups, scimIds);
  }

  /**
   * Converges these users; `mayList` lets a big set read Okta by listing the app's users page by page.
   * Returns the users whose group memberships may have changed.
   */
  private async applyUsers(
    entries: [string, LogEvent[]][],
    scimIds: Map<string, string>,
    mayList: boolean,
  ): Promise<UserWork[]> {
    if (entries.length === 0) return [];
    const ids = entries.map(([id]) => id);
    // Okta's state and the connector's are independent reads: both at once.
    const [okta, lookup] = await settleAll([
      this.readAppUsers(ids, mayList),
      findUsers(this.opts.scim, ids, this.opts.concurrency),
    ] as const);
    const { appUsers, refused: oktaRefused } = okta;
    const existing = lookup.found;
    const work: UserWork[] = [];
    for (const [oktaId, evs] of entries) {
      const why = oktaRefused.get(oktaId) ?? lookup.refused.get(oktaId)?.message;
      if (why !== undefined) {
        await this.dead(evs, oktaId, why);
        continue;
      }
      const key = evs[evs.length - 1]!.uuid;
      work.push({
        oktaId,
        evs,
        key,
        plan: planUser(oktaId, appUsers.get(oktaId), existing.get(oktaId), key),
      });
    }
    const joined: UserWork[] = [];
    const done = (w: UserWork, r: UserPlan) => {
      if (r.scimId) scimIds.set(w.oktaId, r.scimId);
      // Also from the events, not only from this attempt's write: an earlier attempt of this round may have
      // written the account and then failed before the groups followed, leaving nothing to write now.
      if (r.membershipMayChange || w.evs.some((e) => MEMBERSHIP_EVENTS.has(e.eventType))) joined.push(w);
      this.markFirstApplied();
      for (const e of w.evs) this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome: r.outcome });
    };
    // One request of its own decides a user exactly: a 409 converges, another 4xx is a dead letter, 5xx waits.
    const alone = async (w: UserWork) => {
      try {
        done(
          w,
          await applyUser(this.opts.scim, w.oktaId, appUsers.get(w.oktaId), existing.get(w.oktaId), w.key),
        );
      } catch (err) {
        if (err instanceof Refused) return this.dead(w.evs, w.oktaId, err.message);
        throw err;
      }
    };
    for (const w of work) if (!w.plan.request) done(w, w.plan);
    const writes = work.filter((w) => w.plan.request);
    const limits =
      this.opts.bulkOperations > 0 && writes.length > 1 ? await this.opts.scim.bulkLimits() : undefined;
    if (!limits) {
      await forEachLimit(writes, this.opts.concurrency, alone, this.limitOptions());
      return joined;
    }
    const chunks = bulkChunks(
      writes,
      Math.min(this.opts.bulkOperations, limits.maxOperations),
      limits.maxPayloadSize,
    );
    // A few bulks in flight keep the connector and the database busy at once; each bulk is one transaction.
    const sendBulk = async (chunk: UserWork[]) => {
      let results: BulkResult[] | undefined;
      try {
        results = await this.opts.scim.bulk(chunk.map((w) => w.plan.request!));
      } catch (err) {
        if (!(err instanceof Refused)) throw err;
        this.opts.logger.warn(
          { status: err.status, detail: err.detail },
          "bulk refused; sending its writes one by one",
        );
      }
      const retry: UserWork[] = [];
      chunk.forEach((w, k) => {
        const r = results?.[k];
        if (!r || r.status < 200 || r.status > 299) retry.push(w);
        else done(w, { ...w.plan, scimId: w.plan.scimId ?? r.location?.split("/").pop() });
      });
      await forEachLimit(retry, this.opts.concurrency, alone, this.limitOptions());
    };
    await forEachLimit(chunks, Math.min(this.opts.concurrency, 4), sendBulk, this.limitOptions());
    return joined;
  }

  /**
   * Current app-user state for `ids`: one GET each when few, the paged app-user list when many. A user Okta
   * refuses to describe (see subjectRefused) is returned in `refused` with the reason.
   */
  private async readAppUsers(
    ids: string[],
    mayList = true,
  ): Promise<{ appUsers: Map<string, OktaAppUser>; refused: Map<string, string> }> {
    const appUsers = new Map<string, OktaAppUser>();
    const refused = new Map<string, string>();
    if (mayList && ids.length > this.opts.listThreshold) {
      const wanted = new Set(ids);
      const all = await this.opts.okta.getAll<OktaAppUser>(
        `/api/v1/apps/${this.opts.appId}/users?limit=500&expand=user`,
      );
      for (const au of all) if (wanted.has(au.id)) appUsers.set(au.id, au);
      return { appUsers, refused };
    }
    const readOne = async (id: string) => {
      try {
        const path = `/api/v1/apps/${this.opts.appId}/users/${encodeURIComponent(id)}?expand=user`;
        appUsers.set(id, (await this.opts.okta.get<OktaAppUser>(path)).items);
      } catch (err) {
        // 404: not assigned (any more).
        if (err instanceof OktaError && err.status === 404) return;
        if (!subjectRefused(err)) throw err;
        refused.set(id, `Okta: ${(err as Error).message}`);
      }
    };
    await forEachLimit(ids, this.opts.concurrency, readOne, this.limitOptions());
    return { appUsers, refused };
  }

  /** Adds to `groups` the pushed groups that contain any of `users`. */
  private async addGroupsOf(users: UserWork[], groups: Map<string, GroupWork>): Promise<void> {
    const pushed = await this.opts.okta.pushedGroups(this.opts.appId);
    if (pushed.size === 0) return;
    const add = (groupId: string, w: UserWork) => {
      if (!pushed.has(groupId) || groups.has(groupId)) return;
      groups.set(groupId, { evs: [], key: `${w.key}:${groupId}` });
    };
    if (users.length > this.opts.listThreshold) {
      // Many users: converging every pushed group costs fewer Okta calls than asking for each user's groups.
      for (const id of pushed) add(id, users[users.length - 1]!);
      return;
    }
    await forEachLimit(
      users,
      this.opts.concurrency,
      async (w) => {
        try {
          for (const id of await this.opts.okta.userGroups(w.oktaId)) add(id, w);
        } catch (err) {
          if (!subjectRefused(err)) throw err;
        }
      },
      this.limitOptions(),
    );
  }

  private async applyGroups(groups: Map<string, GroupWork>, scimIds: Map<string, string>): Promise<void> {
    const pushed = await this.opts.okta.pushedGroups(this.opts.appId);
    for (const [groupId, { evs, key }] of groups) {
      this.ensureActive();
      if (!pushed.has(groupId)) {
        for (const e of evs) this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
        continue;
      }
      try {
        const { name, memberIds } = await this.opts.okta.groupWithMembers(groupId);
        // Only members assigned to the app are pushed, as Okta does.
        const { appUsers: assigned } = await this.readAppUsers(memberIds);
        const scimMembers: string[] = [];
        for (const m of memberIds) {
          if (!assigned.has(m)) continue;
          const id = scimIds.get(m) ?? (await findUser(this.opts.scim, m))?.id;
          if (id) scimMembers.push(id);
        }
        const outcome = await applyGroup(this.opts.scim, groupId, name, scimMembers, key);
        for (const e of evs) this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome });
      } catch (err) {
        if (err instanceof Refused || subjectRefused(err)) {
          await this.dead(
            evs,
            groupId,
            err instanceof Refused ? err.message : `Okta: ${(err as Error).message}`,
          );
          continue;
        }
        throw err;
      }
    }
  }

  private async dead(evs: LogEvent[], subject: string, reason: string): Promise<void> {
    for (const e of evs) {
      await this.opts.deadLetters.record({
        eventId: e.uuid,
        eventType: e.eventType,
        published: e.published,
        subject,
        reason,
        at: new Date().toISOString(),
      });
      this.opts.metrics.deadLetters.inc();
      this.opts.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "dead" });
    }
    this.opts.logger.error(
      { subject, reason, events: evs.map((e) => e.uuid) },
      "events recorded as dead letters",
    );
  }
}

/** The `since` of a first System Log URL (a new cluster's starting position), if it is one. */
function sinceOf(position: string): string | undefined {
  return new URL(position, "http://position.invalid").searchParams.get("since") ?? undefined;
}
