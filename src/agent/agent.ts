/**
 * The event processor that runs on the primary. One round: read System Log pages from the cursor, read the
 * current state of every user and group they mention (by page when many, so a burst costs few Okta calls),
 * apply it to the connector with bounded concurrency (each user's requests in order), and only then move the
 * cursor, through the guarded transaction. Anything that fails transiently is retried in place: the cursor
 * does not move past an event until it has applied, or been recorded as a dead letter.
 */
import type { Logger } from "pino";
import type { Cursor, CursorValue } from "../cluster/cursor.js";
import type { DeadLetters } from "../cluster/dead-letters.js";
import type { Metrics } from "../observability/metrics.js";
import {
  applyGroup,
  applyUser,
  findUser,
  findUsers,
  type OktaAppUser,
  planUser,
  type UserOutcome,
  type UserPlan,
} from "./apply.js";
import { GROUP_EVENTS, logFilter, USER_EVENTS } from "./event-types.js";
import type { OktaClient } from "./okta-client.js";
import { pool } from "./pool.js";
import { reconcile } from "./reconcile.js";
import { type BulkResult, Deposed, Refused, type ScimClient } from "./scim-client.js";

export interface LogEvent {
  uuid: string;
  published: string;
  eventType: string;
  target?: { id: string; type: string }[];
}

export interface AgentOptions {
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
  /** Where a cluster with no cursor starts reading (ISO time). */
  startAt: string;
  /** More distinct users than this in one round are read by listing the app's users page by page. */
  listThreshold: number;
  cursorGuard: () => { campaignKey: string; term: number } | undefined;
  isPrimary: () => boolean;
  /** Reconcile with Okta this often once caught up (0: never). */
  reconcileEveryMs?: number;
  /** Called once, when this term has processed its first event. */
  onFirstApplied?: () => void;
  logger: Logger;
  metrics: Metrics;
}

const USER_TYPES = new Set<string>(USER_EVENTS);

interface UserWork {
  oktaId: string;
  evs: LogEvent[];
  /** The newest event about the user: the stem of its Idempotency-Keys. */
  key: string;
  plan: UserPlan;
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
const GROUP_TYPES = new Set<string>(GROUP_EVENTS);

export class Agent {
  private stopped = false;
  private wake: (() => void) | undefined;
  cursor: CursorValue | undefined;
  lastAppliedPublished: string | undefined;
  private firstApplied = false;
  private lastReconcile = Date.now();

  constructor(private readonly o: AgentOptions) {}

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private get active(): boolean {
    return !this.stopped && this.o.isPrimary();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private firstUrl(): string {
    const p = new URLSearchParams({
      since: this.o.startAt,
      sortOrder: "ASCENDING",
      limit: String(this.o.pageSize),
      filter: logFilter(),
    });
    return `/api/v1/logs?${p}`;
  }

  /** Runs rounds until stopped or deposed. */
  async run(): Promise<void> {
    this.cursor = await this.o.cursor.read();
    let position = this.cursor?.position ?? this.firstUrl();
    this.o.logger.info({ position: this.cursor ? "stored cursor" : this.o.startAt }, "agent started");
    while (this.active) {
      const { events, next, caughtUp } = await this.fetchRound(position);
      if (!this.active) return;
      if (events.length) {
        await this.applyRound(events);
        if (!this.active) return;
        const last = events[events.length - 1]!;
        const value: CursorValue = {
          position: next,
          published: last.published,
          updatedAt: new Date().toISOString(),
        };
        const guard = this.o.cursorGuard();
        if (guard) value.term = guard.term;
        if (!(await this.o.cursor.advance(value, guard))) {
          this.o.logger.warn(
            { term: guard?.term },
            "cursor not advanced: this node is no longer the primary",
          );
          return;
        }
        this.cursor = value;
        this.lastAppliedPublished = last.published;
        this.o.metrics.cursorTimestamp.set(Date.parse(last.published) / 1000);
        this.o.metrics.eventLag.set(Math.max(0, (Date.now() - Date.parse(last.published)) / 1000));
      }
      position = next;
      if (caughtUp && this.o.reconcileEveryMs && Date.now() - this.lastReconcile >= this.o.reconcileEveryMs) {
        await reconcile({
          okta: this.o.okta,
          scim: this.o.scim,
          appId: this.o.appId,
          concurrency: this.o.concurrency,
          logger: this.o.logger,
        });
        this.lastReconcile = Date.now();
      }
      if (caughtUp) await this.sleep(this.o.pollMs);
    }
  }

  /** The failover clock stops at the first event this term has processed. */
  private markFirstApplied(): void {
    if (this.firstApplied) return;
    this.firstApplied = true;
    this.o.onFirstApplied?.();
  }

  private async fetchRound(start: string): Promise<{ events: LogEvent[]; next: string; caughtUp: boolean }> {
    const events: LogEvent[] = [];
    let next = start;
    for (;;) {
      const page = await this.o.okta.get<LogEvent[]>(next);
      events.push(...page.items);
      if (page.next) next = page.next;
      const full = page.items.length >= this.o.pageSize;
      if (!full || !page.next) return { events, next, caughtUp: true };
      if (events.length >= this.o.maxBatchEvents || !this.active) return { events, next, caughtUp: false };
    }
  }

  private async applyRound(events: LogEvent[]): Promise<void> {
    // The newest event about each user decides its idempotency key; all of its events share the outcome.
    const users = new Map<string, LogEvent[]>();
    const groups = new Map<string, LogEvent[]>();
    for (const e of events) {
      const userTarget = e.target?.find((t) => t.type === "User");
      const groupTarget = e.target?.find((t) => t.type === "UserGroup");
      const appTarget = e.target?.find((t) => t.type === "AppInstance");
      if (appTarget && appTarget.id !== this.o.appId) {
        this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
        continue;
      }
      if (GROUP_TYPES.has(e.eventType) && groupTarget) {
        // A group event converges the whole group, its membership included, after the round's users.
        groups.set(groupTarget.id, [...(groups.get(groupTarget.id) ?? []), e]);
        continue;
      }
      if (USER_TYPES.has(e.eventType) && userTarget)
        users.set(userTarget.id, [...(users.get(userTarget.id) ?? []), e]);
      else this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
    }
    const scimIds = new Map<string, string>();
    const entries = [...users.entries()];
    // A big round reads Okta by listing every app user, which takes a while; the users of its oldest events
    // go first, read one by one, so they are applied (and a new primary's first event lands) without waiting.
    const head = entries.length > this.o.listThreshold ? entries.slice(0, this.o.concurrency) : [];
    if (head.length) await this.applyUsers(head, scimIds, false);
    await this.applyUsers(entries.slice(head.length), scimIds, true);
    if (groups.size) await this.applyGroups(groups, scimIds);
  }

  /** Converges these users; `mayList` lets a big set read Okta by listing the app's users page by page. */
  private async applyUsers(
    entries: [string, LogEvent[]][],
    scimIds: Map<string, string>,
    mayList: boolean,
  ): Promise<void> {
    if (entries.length === 0) return;
    const ids = entries.map(([id]) => id);
    // Okta's state and the connector's are independent reads: both at once.
    const [appUsers, existing] = await Promise.all([
      this.readAppUsers(ids, mayList),
      findUsers(this.o.scim, ids, this.o.concurrency),
    ]);
    const work: UserWork[] = entries.map(([oktaId, evs]) => {
      const key = evs[evs.length - 1]!.uuid;
      return { oktaId, evs, key, plan: planUser(oktaId, appUsers.get(oktaId), existing.get(oktaId), key) };
    });
    const done = (w: UserWork, r: { outcome: UserOutcome; scimId?: string | undefined }) => {
      if (r.scimId) scimIds.set(w.oktaId, r.scimId);
      this.markFirstApplied();
      for (const e of w.evs) this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome: r.outcome });
    };
    // One request of its own decides a user exactly: a 409 converges, another 4xx is a dead letter, 5xx waits.
    const alone = async (w: UserWork) => {
      try {
        done(
          w,
          await applyUser(this.o.scim, w.oktaId, appUsers.get(w.oktaId), existing.get(w.oktaId), w.key),
        );
      } catch (err) {
        if (err instanceof Refused) return this.dead(w.evs, w.oktaId, err.message);
        throw err;
      }
    };
    for (const w of work) if (!w.plan.request) done(w, w.plan);
    const writes = work.filter((w) => w.plan.request);
    const limits =
      this.o.bulkOperations > 0 && writes.length > 1 ? await this.o.scim.bulkLimits() : undefined;
    if (!limits) await pool(writes, this.o.concurrency, alone);
    else {
      const chunks = bulkChunks(
        writes,
        Math.min(this.o.bulkOperations, limits.maxOperations),
        limits.maxPayloadSize,
      );
      // A few bulks in flight keep the connector and the database busy at once; each bulk is one transaction.
      await pool(chunks, Math.min(this.o.concurrency, 4), async (chunk) => {
        let results: BulkResult[] | undefined;
        try {
          results = await this.o.scim.bulk(chunk.map((w) => w.plan.request!));
        } catch (err) {
          if (!(err instanceof Refused)) throw err;
          this.o.logger.warn(
            { status: err.status, detail: err.detail },
            "bulk refused; sending its writes one by one",
          );
        }
        const retry: UserWork[] = [];
        chunk.forEach((w, k) => {
          const r = results?.[k];
          if (!r || r.status < 200 || r.status > 299) retry.push(w);
          else done(w, { outcome: w.plan.outcome, scimId: w.plan.scimId ?? r.location?.split("/").pop() });
        });
        await pool(retry, this.o.concurrency, alone);
      });
    }
  }

  /** Current app-user state for `ids`: one GET each when few, the paged app-user list when many. */
  private async readAppUsers(ids: string[], mayList = true): Promise<Map<string, OktaAppUser>> {
    const out = new Map<string, OktaAppUser>();
    if (mayList && ids.length > this.o.listThreshold) {
      const wanted = new Set(ids);
      const all = await this.o.okta.getAll<OktaAppUser>(
        `/api/v1/apps/${this.o.appId}/users?limit=500&expand=user`,
      );
      for (const au of all) if (wanted.has(au.id)) out.set(au.id, au);
      return out;
    }
    await pool(ids, this.o.concurrency, async (id) => {
      try {
        out.set(
          id,
          (await this.o.okta.get<OktaAppUser>(`/api/v1/apps/${this.o.appId}/users/${id}?expand=user`)).items,
        );
      } catch (err) {
        if ((err as { status?: number }).status !== 404) throw err;
      }
    });
    return out;
  }

  private async applyGroups(groups: Map<string, LogEvent[]>, scimIds: Map<string, string>): Promise<void> {
    const pushed = await this.o.okta.pushedGroups(this.o.appId);
    for (const [groupId, evs] of groups) {
      if (!pushed.has(groupId)) {
        for (const e of evs) this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "ignored" });
        continue;
      }
      try {
        const { name, memberIds } = await this.o.okta.groupWithMembers(groupId);
        // Only members assigned to the app are pushed, as Okta does.
        const assigned = await this.readAppUsers(memberIds);
        const scimMembers: string[] = [];
        for (const m of memberIds) {
          if (!assigned.has(m)) continue;
          const id = scimIds.get(m) ?? (await findUser(this.o.scim, m))?.id;
          if (id) scimMembers.push(id);
        }
        const outcome = await applyGroup(this.o.scim, groupId, name, scimMembers, evs[evs.length - 1]!.uuid);
        for (const e of evs) this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome });
      } catch (err) {
        if (err instanceof Refused) {
          await this.dead(evs, groupId, err.message);
          continue;
        }
        throw err;
      }
    }
  }

  private async dead(evs: LogEvent[], subject: string, reason: string): Promise<void> {
    for (const e of evs) {
      await this.o.deadLetters.record({
        eventId: e.uuid,
        eventType: e.eventType,
        published: e.published,
        subject,
        reason,
        at: new Date().toISOString(),
      });
      this.o.metrics.deadLetters.inc();
      this.o.metrics.eventsProcessed.inc({ type: e.eventType, outcome: "dead" });
    }
    this.o.logger.error(
      { subject, reason, events: evs.map((e) => e.uuid) },
      "events recorded as dead letters",
    );
  }
}

export { Deposed };
