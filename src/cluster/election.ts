/**
 * Leader election on etcd leases (the etcd election recipe, on etcd3 primitives): each node puts a key under
 * /<prefix>/<cluster>/election/ bound to its lease; the key with the lowest create_revision leads, and that
 * revision is the leader's term and fencing token, which grows with every term.
 *
 * Built on the primitives rather than etcd3's Election class because that class keeps its lease to itself:
 * the keepalive timing, and so self-demotion at TTL/2 (src/cluster/lease-health.ts), must be ours.
 *
 * Each term is a Leadership (src/cluster/leadership.ts): made when this node is elected, ended the moment it
 * is not. Everything else here is read through getters.
 */

import { EventEmitter } from "node:events";
import { ExponentialBackoff, halfJitterGenerator } from "cockatiel";
import type { Etcd3, Lease, Watcher } from "etcd3";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { type Clock, monotonicClock } from "./clock.js";
import { deadline } from "./etcd.js";
import { Leadership } from "./leadership.js";
import { DemotionTimer, LeaseHealth } from "./lease-health.js";
import { LeaseSweeper } from "./lease-sweeper.js";

export type Role = "primary" | "standby";

export interface ElectionOptions {
  client: Etcd3;
  /** e.g. /provisiond/default */
  root: string;
  nodeId: string;
  /** Whole seconds, at least 2 s: etcd leases have second granularity, and TTL/2 must leave room to act. */
  ttlMs: number;
  logger: Logger;
  metrics: Metrics;
  clock?: Clock;
}

/**
 * One time this node became primary, each leg timed. The legs run: the previous primary's last keepalive that
 * etcd acknowledged (known only when its lease ran out: a crash, a pause or a partition) → its key gone →
 * this node elected → this term's first processed event. A leg this node did not see is null.
 */
export interface Failover {
  /** When this node was elected. */
  at: string;
  from: string | null;
  to: string;
  term: number;
  /** How the previous term ended: its lease ran out, or its key was deleted while the lease was alive (a graceful handover); null when not seen. */
  previousEnded: "lease-ran-out" | "released" | null;
  /** The previous primary's last acknowledged keepalive, estimated from its lease's time to live (to within one poll, 50 ms near the end). */
  lastKeepaliveAt: string | null;
  keyGoneAt: string | null;
  firstEventAt: string | null;
  legsMs: {
    lastKeepaliveToKeyGone: number | null;
    keyGoneToElected: number | null;
    electedToFirstEvent: number | null;
  };
  /** From the first leg this node saw (the last keepalive, else the key gone) to the first event: how long provisioning stood still. */
  totalMs: number | null;
}

/** What this node saw of the previous term's end, on the monotonic clock. */
interface PreviousEnd {
  /** The leader key whose deletion this describes: it holds only for the election that replaces that key. */
  key: string;
  goneAt: number;
  keepaliveAt: number | undefined;
  ended: Failover["previousEnded"];
}

interface Candidate {
  key: string;
  nodeId: string;
  createRevision: number;
  lease: string;
}

export const MIN_TTL_MS = 2000;

export class Election extends EventEmitter {
  private _role: Role = "standby";
  private _leaderId: string | undefined;
  private _since: string | undefined;
  private readonly _failovers: Failover[] = [];
  private leadership: Leadership | undefined;
  /** Each term's failover record, until its first processed event stops the clock. */
  private readonly failoverClock = new WeakMap<
    Leadership,
    { failover: Failover; start: number | undefined; electedAt: number; goneAt: number | undefined }
  >();
  /** How the previous leader's term ended, for the failover timeline. */
  private previousEnd: PreviousEnd | undefined;

  private readonly clock: Clock;
  private readonly health: LeaseHealth;
  private readonly timer: DemotionTimer;
  private readonly sweeper: LeaseSweeper;
  private lease: Lease | undefined;
  private campaignKey: string | undefined;
  /** The etcd revision that created our key; a read older than it cannot see the key yet. */
  private campaignRevision = 0;
  /** evaluate() calls started, and the latest whose read was applied. */
  private evaluations = 0;
  private appliedEvaluation = 0;
  private watcher: Watcher | undefined;
  private keepaliveLoop: NodeJS.Timeout | undefined;
  private evaluateLoop: NodeJS.Timeout | undefined;
  private running = false;
  private campaigning: Promise<void> | undefined;
  private previousLeader: string | undefined;
  private readonly electionPrefix: string;
  private leaderKey: string | undefined;
  private leaderLease: string | undefined;
  /** The campaign keys of the last read, in line: the first holds the term. */
  private line: Candidate[] = [];

  constructor(private readonly opts: ElectionOptions) {
    super();
    if (!Number.isInteger(opts.ttlMs / 1000) || opts.ttlMs < MIN_TTL_MS)
      throw new RangeError(
        `lease TTL must be whole seconds and at least ${MIN_TTL_MS} ms, got ${opts.ttlMs}`,
      );
    this.electionPrefix = `${opts.root}/election/`;
    this.clock = opts.clock ?? monotonicClock;
    this.health = new LeaseHealth(opts.ttlMs);
    opts.metrics.isLeader = () => this.isPrimary();
    // A lease that went unacknowledged past TTL/2 is never trusted again (LeaseSweeper relies on it).
    this.timer = new DemotionTimer(this.health, () => this.lost("keepalive"), this.clock);
    this.sweeper = new LeaseSweeper(opts.client, opts.logger, opts.metrics, this.clock);
  }

  get role(): Role {
    return this._role;
  }
  get leaderId(): string | undefined {
    return this._leaderId;
  }
  /** This node's term while it is primary. */
  get term(): number | undefined {
    return this.leadership?.term;
  }
  get since(): string | undefined {
    return this._since;
  }
  /** The last 10 times this node became primary, newest first. */
  get failovers(): readonly Failover[] {
    return this._failovers;
  }
  /**
   * The nodes in line at the last read of etcd: the first holds the term, the others wait in the order they
   * would take over. A node that is in line twice (a key from before a restart, until its lease ends) shows twice.
   */
  get members(): { nodeId: string; role: Role; term: number | null }[] {
    return this.line.map((c, i) => ({
      nodeId: c.nodeId,
      role: i === 0 ? "primary" : "standby",
      term: i === 0 ? c.createRevision : null,
    }));
  }

  /** The current term, while this node is primary. */
  get current(): Leadership | undefined {
    return this.leadership?.isCurrent() ? this.leadership : undefined;
  }

  get ttlSeconds(): number {
    return this.opts.ttlMs / 1000;
  }

  /** Whether this node may act as primary right now. */
  isPrimary(): boolean {
    return this._role === "primary" && this.health.healthy(this.clock.now());
  }

  status() {
    const now = this.clock.now();
    return {
      // Not a primary whose lease went stale, even before the demotion timer has run (a node just unfrozen).
      role: this._role === "primary" && !this.isPrimary() ? ("standby" as Role) : this._role,
      leaderId: this._leaderId ?? null,
      term: this.term ?? null,
      since: this._since ?? null,
      lease: {
        ttlMs: this.opts.ttlMs,
        lastKeepaliveAgeMs: this.health.age(now) ?? null,
        healthy: this.health.healthy(now),
        key: this.campaignKey ?? null,
      },
    };
  }

  /** etcd's current revision: no campaign key can have a create revision above it. */
  async etcdRevision(): Promise<number> {
    const res = await this.opts.client.get(this.electionPrefix).options(deadline(2000)).exec();
    return Number(res.header.revision);
  }

  async start(): Promise<void> {
    this.running = true;
    // Not awaited: with etcd down at startup the watch waits for it; the periodic evaluation covers the gap.
    this.startWatch().catch((err) =>
      this.opts.logger.warn({ err: (err as Error).message }, "election watch not established yet"),
    );
    this.evaluateLoop = setInterval(() => void this.evaluate(), Math.max(200, this.opts.ttlMs / 4));
    this.ensureCampaign();
  }

  private async startWatch(): Promise<void> {
    this.watcher = await this.opts.client.watch().prefix(this.electionPrefix).create();
    this.watcher.on("delete", (kv) => {
      if (this.leaderKey === kv.key.toString()) this.leaderKeyGone(this.leaderKey);
      void this.evaluate();
    });
    this.watcher.on("put", () => void this.evaluate());
    this.watcher.on("error", (err) =>
      this.opts.logger.warn({ err }, "election watch error; re-evaluating periodically"),
    );
  }

  /** Grants a lease, puts the campaign key, and keeps the lease alive. Retries until stopped. */
  private async campaign(): Promise<void> {
    // Doubling from 100 ms to TTL/2, jittered within each step's upper half, so nodes that lost etcd together
    // do not campaign in lockstep when it returns.
    let delay = new ExponentialBackoff({
      initialDelay: 100,
      maxDelay: this.opts.ttlMs / 2,
      generator: halfJitterGenerator,
    }).next();
    while (this.running && !this.campaignKey) {
      try {
        const lease = this.opts.client.lease(this.ttlSeconds, { autoKeepAlive: false });
        const sentAt = this.clock.now();
        const id = await lease.grant();
        this.health.reset();
        this.health.acknowledge(sentAt, this.clock.now());
        const key = `${this.electionPrefix}${id}`;
        const put = await lease
          .put(key)
          .value(this.opts.nodeId)
          .options(deadline(this.opts.ttlMs / 2))
          .exec();
        this.lease = lease;
        this.campaignKey = key;
        this.campaignRevision = Number(put.header.revision);
        this.startKeepalives();
        this.opts.logger.info({ key, ttlMs: this.opts.ttlMs }, "campaigning for primary");
        await this.evaluate();
        return;
      } catch (err) {
        this.opts.logger.warn({ err: (err as Error).message }, "cannot campaign; etcd unreachable? retrying");
        await new Promise((r) => setTimeout(r, delay.duration));
        delay = delay.next(undefined);
      }
    }
  }

  private startKeepalives(): void {
    const every = Math.max(100, this.opts.ttlMs / 6);
    const tick = async () => {
      const lease = this.lease;
      if (!lease) return;
      const sentAt = this.clock.now();
      try {
        const res = await lease.keepaliveOnce(deadline(this.opts.ttlMs / 3));
        if (Number(res.TTL) <= 0) throw new Error("etcd says the lease has expired");
        if (lease !== this.lease) return;
        if (this.health.acknowledge(sentAt, this.clock.now()) === "too-late") {
          // This node stopped acting at TTL/2, and a standby may already be revoking the lease.
          this.lost("keepalive");
          return;
        }
        this.timer.arm();
      } catch (err) {
        this.opts.metrics.keepaliveFailures.inc();
        this.opts.logger.warn(
          { err: (err as Error).message, ageMs: this.health.age(this.clock.now()) },
          "lease keepalive failed",
        );
        // Only about the lease we still hold: a campaign may have replaced it while this keepalive was out.
        if (lease !== this.lease) return;
        if (!this.health.healthy(this.clock.now()) || (err as Error).message.includes("expired"))
          this.lost("keepalive");
      }
    };
    this.keepaliveLoop = setInterval(() => void tick(), every);
    this.timer.arm();
  }

  /** Records how the leader's key `key` went, from what the sweeper saw of its lease. */
  private leaderKeyGone(key: string): void {
    const now = this.clock.now();
    const seen = this.sweeper.seen(this.leaderLease);
    // Ran out: its last answer was under a second left. Released: the key went while the last answer still
    // promised it life (TTL whole seconds, truncated, from when it came). Neither, or not watched (this node
    // was not next in line): not known.
    let ended: Failover["previousEnded"] = null;
    if (seen?.lastTtl === 0) ended = "lease-ran-out";
    else if (seen?.lastTtl !== undefined && seen.answeredAt !== undefined)
      ended = now < seen.answeredAt + seen.lastTtl * 1000 ? "released" : null;
    this.previousEnd = {
      key,
      goneAt: now,
      keepaliveAt: ended === "lease-ran-out" ? seen?.renewedAtLeast : undefined,
      ended,
    };
  }

  /** Finds the current leader and, if it is this node and its lease is healthy, takes the role. */
  private async evaluate(): Promise<void> {
    if (!this.running) return;
    const seq = ++this.evaluations;
    let candidates: Candidate[];
    let readRevision: number;
    try {
      const res = await this.opts.client
        .getAll()
        .prefix(this.electionPrefix)
        .sort("Create", "Ascend")
        .options(deadline(Math.max(500, this.opts.ttlMs / 4)))
        .exec();
      readRevision = Number(res.header.revision);
      candidates = res.kvs.map((kv) => ({
        key: kv.key.toString(),
        nodeId: kv.value.toString(),
        createRevision: Number(kv.create_revision),
        lease: String(kv.lease),
      }));
    } catch {
      return; // the keepalive path decides what an unreachable etcd means
    }
    // A read that a later one overtook would put an older line back (and the old leader with it).
    if (seq < this.appliedEvaluation) return;
    this.appliedEvaluation = seq;
    this.line = candidates;
    const first = candidates[0];
    if (first?.key !== this.leaderKey) {
      if (this.leaderKey !== undefined) this.previousLeader = this._leaderId;
      // The watch's delete event may come after this read (or not at all while it reconnects).
      if (
        this.leaderKey !== undefined &&
        this.previousEnd?.key !== this.leaderKey &&
        !candidates.some((c) => c.key === this.leaderKey)
      )
        this.leaderKeyGone(this.leaderKey);
      // What the watch saw of the old key's end describes only this change, and only if it makes us leader:
      // kept past it, it would be reported for a later election whose deletion the watch missed.
      const end = this.previousEnd?.key === this.leaderKey ? this.previousEnd : undefined;
      this.previousEnd = first !== undefined && first.key === this.campaignKey ? end : undefined;
      this.leaderKey = first?.key;
      this.leaderLease = first?.lease;
      this._leaderId = first?.nodeId;
      this.emit("leader", this._leaderId);
    }
    const mine = candidates.find((c) => c.key === this.campaignKey);
    if (this.campaignKey && !mine && this.lease && readRevision >= this.campaignRevision) {
      // Our key is gone: the lease expired while we could not reach etcd. Start over with a new one.
      this.lost("key-gone");
      return;
    }
    // The next in line ends a dead leader's term at its lease's expiry, not at etcd's next sweep.
    this.sweeper.track(mine && candidates[1] === mine && first ? first.lease : undefined);
    if (mine && first === mine && this._role !== "primary" && this.health.healthy(this.clock.now()))
      this.elect(mine);
  }

  private elect(mine: Candidate): void {
    this._role = "primary";
    this._since = new Date().toISOString();
    const now = this.clock.now();
    const end = this.previousEnd;
    this.previousEnd = undefined;
    /** A monotonic instant as wall-clock time: the legs are measured on the monotonic clock. */
    const wall = (t: number | undefined) =>
      t === undefined ? null : new Date(Date.now() - (now - t)).toISOString();
    const ms = (from: number | undefined, to: number | undefined) =>
      from === undefined || to === undefined ? null : Math.round(to - from);
    const failover: Failover = {
      at: this._since,
      from: this.previousLeader ?? null,
      to: this.opts.nodeId,
      term: mine.createRevision,
      previousEnded: end?.ended ?? null,
      lastKeepaliveAt: wall(end?.keepaliveAt),
      keyGoneAt: wall(end?.goneAt),
      firstEventAt: null,
      legsMs: {
        lastKeepaliveToKeyGone: ms(end?.keepaliveAt, end?.goneAt),
        keyGoneToElected: ms(end?.goneAt, now),
        electedToFirstEvent: null,
      },
      totalMs: null,
    };
    this._failovers.unshift(failover);
    this._failovers.length = Math.min(this._failovers.length, 10);
    const leadership = new Leadership(mine.createRevision, mine.key, () => this.isPrimary());
    this.leadership = leadership;
    this.failoverClock.set(leadership, {
      failover,
      start: end?.keepaliveAt ?? end?.goneAt,
      electedAt: now,
      goneAt: end?.goneAt,
    });
    this.opts.metrics.leaderTransitions.inc({ to: "primary" });
    this.opts.logger.info({ term: leadership.term, failover }, "elected primary");
    this.emit("elected", leadership);
  }

  /** The failover's clock stops at the first event a term processes; later calls change nothing. */
  firstEventProcessed(lead: Leadership): void {
    const f = this.failoverClock.get(lead);
    if (!f) return;
    this.failoverClock.delete(lead);
    const now = this.clock.now();
    f.failover.firstEventAt = new Date().toISOString();
    f.failover.legsMs.electedToFirstEvent = Math.round(now - f.electedAt);
    if (f.start !== undefined) f.failover.totalMs = Math.round(now - f.start);
    if (f.goneAt === undefined) return;
    // The histogram keeps its meaning (key gone → first event) so alerts over it stay comparable.
    this.opts.metrics.failoverDuration.observe((now - f.goneAt) / 1000);
    this.opts.logger.info({ term: lead.term, failover: f.failover }, "first event processed after failover");
  }

  /** Stops acting as primary at once: the term ends before anyone is told. */
  private demote(reason: string): void {
    if (this._role !== "primary") return;
    this._role = "standby";
    // /status `since`: when this role began, so a demotion can be placed against the next election.
    this._since = new Date().toISOString();
    const term = this.leadership?.term;
    this.leadership?.end(reason);
    this.leadership = undefined;
    this.opts.metrics.leaderTransitions.inc({ to: "standby" });
    if (reason !== "resigned") this.opts.metrics.selfDemotions.inc({ reason });
    this.opts.logger.warn({ term, reason }, "no longer primary");
    this.emit("demoted", { term, reason });
  }

  /** The lease cannot be trusted any more: demote, drop it, and campaign again with a new one. */
  private lost(reason: string): void {
    this.demote(reason);
    void this.dropLease(500);
    this.ensureCampaign();
  }

  /**
   * Gives up the term `lead` and campaigns again behind the other candidates: what a primary does when the
   * store says a newer term exists (the connector refused its fencing token). A term already over is left be,
   * so a late report about an old term can never end a newer one.
   */
  stepDown(lead: Leadership, reason: string): void {
    if (!this.running || lead !== this.leadership) return;
    this.opts.logger.warn({ term: lead.term, reason }, "stepping down; campaigning again");
    this.lost(reason);
  }

  private ensureCampaign(): void {
    if (!this.running || this.campaigning) return;
    this.campaigning = this.campaign().finally(() => {
      this.campaigning = undefined;
      // The lease may have been lost while the campaign was finishing.
      if (this.running && !this.campaignKey) this.ensureCampaign();
    });
  }

  /** Stops keeping the lease alive and deletes key and lease, best effort: an abandoned lease expires anyway. */
  private async dropLease(timeoutMs: number): Promise<void> {
    if (this.keepaliveLoop) clearInterval(this.keepaliveLoop);
    this.keepaliveLoop = undefined;
    this.timer.disarm();
    const lease = this.lease;
    const key = this.campaignKey;
    this.lease = undefined;
    this.campaignKey = undefined;
    try {
      if (key) await this.opts.client.delete().key(key).options(deadline(timeoutMs)).exec();
      await lease?.revoke(deadline(timeoutMs));
    } catch (err) {
      lease?.release();
      this.opts.logger.warn(
        { err: (err as Error).message },
        "could not give up the lease cleanly; it will expire on its own",
      );
    }
  }

  /** Graceful handover: delete the campaign key so a standby wins at once, and stop campaigning. */
  async resign(): Promise<void> {
    this.running = false;
    this.demote("resigned");
    await this.dropLease(1000);
  }

  async stop(): Promise<void> {
    this.sweeper.stop();
    if (this.running || this.lease) await this.resign();
    if (this.evaluateLoop) clearInterval(this.evaluateLoop);
    await this.watcher?.cancel().catch(() => undefined);
    await this.campaigning?.catch(() => undefined);
  }
}
