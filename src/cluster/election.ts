/**
 * Leader election on etcd leases (the etcd election recipe, on etcd3 primitives): each node puts a key under
 * /<prefix>/<cluster>/election/ bound to its lease; the key with the lowest create_revision leads, and that
 * revision is the leader's fencing token, which grows with every term.
 *
 * Built on the primitives rather than etcd3's Election class because that class keeps its lease to itself:
 * the keepalive timing, and so self-demotion at TTL/2 (src/cluster/lease-health.ts), must be ours.
 */
import { EventEmitter } from "node:events";
import type { Etcd3, Lease, Watcher } from "etcd3";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { deadline } from "./etcd.js";
import { DemotionTimer, LeaseHealth } from "./lease-health.js";
import { LeaseSweeper } from "./lease-sweeper.js";

export type Role = "primary" | "standby";

export interface ElectionOptions {
  client: Etcd3;
  /** e.g. /provisiond/default */
  root: string;
  nodeId: string;
  ttlMs: number;
  logger: Logger;
  metrics: Metrics;
}

export interface Failover {
  at: string;
  from: string | null;
  to: string;
  term: number;
  /** ms from the previous leader's key vanishing to this node's election (processing adds to it). */
  electedAfterMs: number | null;
}

interface Candidate {
  key: string;
  nodeId: string;
  createRevision: number;
  lease: string;
}

export class Election extends EventEmitter {
  role: Role = "standby";
  term: number | undefined;
  leaderId: string | undefined;
  campaignKey: string | undefined;
  since: string | undefined;
  readonly failovers: Failover[] = [];

  private readonly health: LeaseHealth;
  private readonly timer: DemotionTimer;
  private readonly sweeper: LeaseSweeper;
  private lease: Lease | undefined;
  private watcher: Watcher | undefined;
  private keepaliveLoop: NodeJS.Timeout | undefined;
  private evaluateLoop: NodeJS.Timeout | undefined;
  private running = false;
  private campaigning: Promise<void> | undefined;
  private previousLeader: { nodeId: string; goneAt: number | undefined } | undefined;
  private readonly electionPrefix: string;
  private leaderKey: string | undefined;
  /** The etcd revision that created our key; a read older than it cannot see the key yet. */
  private campaignRevision = 0;

  constructor(private readonly o: ElectionOptions) {
    super();
    this.electionPrefix = `${o.root}/election/`;
    this.health = new LeaseHealth(o.ttlMs);
    // A lease that went unacknowledged past TTL/2 is never trusted again (LeaseSweeper relies on it).
    this.timer = new DemotionTimer(this.health, () => this.lost("keepalive"));
    this.sweeper = new LeaseSweeper(o.client, o.logger, o.metrics);
  }

  get ttlSeconds(): number {
    return Math.max(1, Math.round(this.o.ttlMs / 1000));
  }

  /** Whether this node may act as primary right now (checked before every write). */
  isPrimary(): boolean {
    return this.role === "primary" && this.health.healthy(Date.now());
  }

  status() {
    const age = this.health.age(Date.now());
    return {
      role: this.role,
      leaderId: this.leaderId ?? null,
      term: this.term ?? null,
      since: this.since ?? null,
      lease: {
        ttlMs: this.o.ttlMs,
        lastKeepaliveAgeMs: age ?? null,
        healthy: this.health.healthy(Date.now()),
        key: this.campaignKey ?? null,
      },
    };
  }

  async start(): Promise<void> {
    this.running = true;
    // Not awaited: with etcd down at startup the watch waits for it; the periodic evaluation covers the gap.
    this.startWatch().catch((err) =>
      this.o.logger.warn({ err: (err as Error).message }, "election watch not established yet"),
    );
    this.evaluateLoop = setInterval(() => void this.evaluate(), Math.max(200, this.o.ttlMs / 4));
    this.ensureCampaign();
  }

  private async startWatch(): Promise<void> {
    this.watcher = await this.o.client.watch().prefix(this.electionPrefix).create();
    this.watcher.on("delete", (kv) => {
      const key = kv.key.toString();
      if (this.leaderKey === key) this.previousLeader = { nodeId: this.leaderId ?? "?", goneAt: Date.now() };
      void this.evaluate();
    });
    this.watcher.on("put", () => void this.evaluate());
    this.watcher.on("error", (err) =>
      this.o.logger.warn({ err }, "election watch error; re-evaluating periodically"),
    );
  }

  /** Grants a lease, puts the campaign key, and keeps the lease alive. Retries until stopped. */
  private async campaign(): Promise<void> {
    let backoff = 100;
    while (this.running && !this.campaignKey) {
      try {
        const lease = this.o.client.lease(this.ttlSeconds, { autoKeepAlive: false });
        const sentAt = Date.now();
        const id = await lease.grant();
        this.health.reset();
        this.health.acknowledged(sentAt);
        const key = `${this.electionPrefix}${id}`;
        const put = await lease
          .put(key)
          .value(this.o.nodeId)
          .options(deadline(this.o.ttlMs / 2))
          .exec();
        this.lease = lease;
        this.campaignKey = key;
        this.campaignRevision = Number(put.header.revision);
        this.startKeepalives();
        this.o.logger.info({ key, ttlMs: this.o.ttlMs }, "campaigning for primary");
        await this.evaluate();
        return;
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message }, "cannot campaign; etcd unreachable? retrying");
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, this.o.ttlMs / 2);
      }
    }
  }

  private startKeepalives(): void {
    const every = Math.max(100, this.o.ttlMs / 6);
    const tick = async () => {
      const lease = this.lease;
      if (!lease) return;
      const sentAt = Date.now();
      try {
        const res = await lease.keepaliveOnce(deadline(this.o.ttlMs / 3));
        if (Number(res.TTL) <= 0) throw new Error("etcd says the lease has expired");
        if (lease !== this.lease) return;
        // Too late: this node has stopped acting at TTL/2, and a standby may already be revoking the lease.
        if (!this.health.healthy(Date.now())) {
          this.lost("keepalive");
          return;
        }
        this.health.acknowledged(sentAt);
        this.timer.arm();
      } catch (err) {
        this.o.metrics.keepaliveFailures.inc();
        this.o.logger.warn(
          { err: (err as Error).message, ageMs: this.health.age(Date.now()) },
          "lease keepalive failed",
        );
        // Only about the lease we still hold: a campaign may have replaced it while this keepalive was out.
        if (lease !== this.lease) return;
        if (!this.health.healthy(Date.now()) || (err as Error).message.includes("expired"))
          this.lost("keepalive");
      }
    };
    this.keepaliveLoop = setInterval(() => void tick(), every);
    this.timer.arm();
  }

  /** Finds the current leader and, if it is this node and its lease is healthy, takes the role. */
  private async evaluate(): Promise<void> {
    if (!this.running) return;
    let candidates: Candidate[];
    let readRevision: number;
    try {
      const res = await this.o.client
        .getAll()
        .prefix(this.electionPrefix)
        .sort("Create", "Ascend")
        .options(deadline(Math.max(500, this.o.ttlMs / 4)))
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
    const first = candidates[0];
    if (first?.key !== this.leaderKey) {
      this.leaderKey = first?.key;
      this.leaderId = first?.nodeId;
      this.emit("leader", this.leaderId);
    }
    const mine = candidates.find((c) => c.key === this.campaignKey);
    if (this.campaignKey && !mine && this.lease && readRevision >= this.campaignRevision) {
      // Our key is gone: the lease expired while we could not reach etcd. Start over with a new one.
      this.lost("key-gone");
      return;
    }
    // The next in line ends a dead leader's term at its lease's expiry, not at etcd's next sweep.
    this.sweeper.track(mine && candidates[1] === mine && first ? first.lease : undefined);
    if (mine && first === mine && this.role !== "primary" && this.health.healthy(Date.now()))
      this.elect(mine);
  }

  private elect(mine: Candidate): void {
    this.role = "primary";
    this.term = mine.createRevision;
    this.since = new Date().toISOString();
    const prev = this.previousLeader;
    const failover: Failover = {
      at: this.since,
      from: prev?.nodeId ?? null,
      to: this.o.nodeId,
      term: this.term,
      electedAfterMs: prev?.goneAt ? Date.now() - prev.goneAt : null,
    };
    this.failovers.unshift(failover);
    this.failovers.length = Math.min(this.failovers.length, 10);
    this.o.metrics.leader.set(1);
    this.o.metrics.leaderTransitions.inc({ to: "primary" });
    this.o.logger.info({ term: this.term, failover }, "elected primary");
    this.emit("elected", { term: this.term, previousGoneAt: prev?.goneAt });
  }

  /** Stops acting as primary at once; the role and term are cleared before anyone is told. */
  private demote(reason: string): void {
    if (this.role !== "primary") return;
    this.role = "standby";
    const term = this.term;
    this.o.metrics.leader.set(0);
    this.o.metrics.leaderTransitions.inc({ to: "standby" });
    if (reason !== "resigned") this.o.metrics.selfDemotions.inc({ reason });
    this.o.logger.warn({ term, reason }, "no longer primary");
    this.emit("demoted", { term, reason });
  }

  /** The lease cannot be trusted any more: demote, drop it, and campaign again with a new one. */
  private lost(reason: string): void {
    this.demote(reason);
    this.dropLease();
    this.ensureCampaign();
  }

  private ensureCampaign(): void {
    if (!this.running || this.campaigning) return;
    this.campaigning = this.campaign().finally(() => {
      this.campaigning = undefined;
      // The lease may have been lost while the campaign was finishing.
      if (this.running && !this.campaignKey) this.ensureCampaign();
    });
  }

  private dropLease(): void {
    if (this.keepaliveLoop) clearInterval(this.keepaliveLoop);
    this.keepaliveLoop = undefined;
    this.timer.disarm();
    const lease = this.lease;
    this.lease = undefined;
    this.campaignKey = undefined;
    this.term = undefined;
    // Best effort: a lease we no longer keep alive expires on its own.
    lease?.revoke(deadline(500)).catch(() => lease.release());
  }

  /** Graceful handover: delete the campaign key so a standby wins at once. */
  async resign(): Promise<void> {
    this.demote("resigned");
    const key = this.campaignKey;
    const lease = this.lease;
    this.running = false;
    if (this.keepaliveLoop) clearInterval(this.keepaliveLoop);
    this.timer.disarm();
    this.lease = undefined;
    this.campaignKey = undefined;
    try {
      if (key) await this.o.client.delete().key(key).options(deadline(1000)).exec();
      await lease?.revoke(deadline(1000));
    } catch (err) {
      this.o.logger.warn(
        { err: (err as Error).message },
        "could not resign cleanly; the lease will expire on its own",
      );
    }
  }

  async stop(): Promise<void> {
    this.sweeper.stop();
    if (this.running || this.lease) await this.resign();
    if (this.evaluateLoop) clearInterval(this.evaluateLoop);
    await this.watcher?.cancel().catch(() => undefined);
    await this.campaigning?.catch(() => undefined);
  }
}
