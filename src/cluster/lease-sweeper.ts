/**
 * Revokes the leader's lease the moment etcd's own accounting says it has expired, instead of waiting for
 * etcd's expiry sweep. etcd 3.4 revokes expired leases in a loop that runs every 500 ms, so a dead leader's
 * key outlives its lease by up to half a second, and every failover pays for it.
 *
 * The next candidate in line asks etcd for the leader lease's time to live. etcd answers in whole seconds,
 * truncated ("the lease will expire in under TTL+1 seconds", etcd's API reference), so an answer of 0 computed
 * at etcd time t means the lease expires before t + 1 s unless it is renewed. We revoke it one second (plus a
 * margin) after receiving that answer, when it has expired by etcd's clock (clocks tick at the same rate, the
 * assumption the whole election rests on), and etcd would refuse to renew it anyway: Renew on an expired lease
 * only waits for its revocation. An answer above 0 at any poll in between (a renewal) cancels the revocation.
 *
 * A renewal that reaches etcd in that last second comes from a primary that has gone more than TTL/2 without
 * an acknowledged keepalive (a lease with under 1 s left was last renewed more than TTL − 1 ≥ TTL/2 ago), and
 * such a primary has already stopped and given up that lease for good (LeaseHealth.acknowledge answers
 * "too-late"), so revoking it deposes no one who is still acting.
 */
import type { Etcd3 } from "etcd3";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { type Clock, monotonicClock } from "./clock.js";
import { deadline } from "./etcd.js";

/** Covers a clock-rate difference over the last second and the time the answer spent in flight back. */
const MARGIN_MS = 25;
/** How often to ask while the lease has under 2 s left, which bounds how late the revocation comes. */
const FAST_POLL_MS = 50;
const SLOW_POLL_MS = 250;

/** The two lease calls the sweeper makes (etcd3's lease client has them). */
export type LeaseApi = Pick<Etcd3["leaseClient"], "leaseTimeToLive" | "leaseRevoke">;

/**
 * What the sweeper saw of the last lease it watched, for the failover timeline. Each answer of TTL whole
 * seconds (truncated) at time t, of a lease granted for G seconds, says it was last renewed in
 * (t − (G − TTL) s − 1 s, t − (G − TTL) s]: the latest lower bound is within one poll interval (50 ms in the
 * lease's last second) of the renewal.
 */
export interface LeaseView {
  lease: string;
  /** Monotonic ms: the lease was last renewed no earlier than this. */
  renewedAtLeast: number | undefined;
  /**
   * The last answer of whole seconds left (0 or more; -1, "no such lease", changes nothing: it says the lease
   * is gone, not how). 0 means it was running out; more means it was alive under a second ago (the poll
   * interval in its last seconds), so a key that then goes was deleted or revoked, not expired. Undefined: no
   * answer yet.
   */
  lastTtl: number | undefined;
  /** Monotonic ms: when lastTtl's answer came. */
  answeredAt: number | undefined;
}

export class LeaseSweeper {
  private target: string | undefined;
  private revokeAt: number | undefined;
  private view: LeaseView | undefined;
  private timer: unknown;
  private stopped = false;
  private readonly leases: LeaseApi;

  constructor(
    client: Etcd3 | { leaseClient: LeaseApi },
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly clock: Clock = monotonicClock,
  ) {
    this.leases = client.leaseClient;
  }

  /** Watches this lease (the leader's, while this node is next in line); undefined stops watching. */
  track(leaseId: string | undefined): void {
    if (leaseId === this.target) return;
    this.target = leaseId;
    if (leaseId !== undefined && leaseId !== this.view?.lease)
      this.view = { lease: leaseId, renewedAtLeast: undefined, lastTtl: undefined, answeredAt: undefined };
    this.revokeAt = undefined;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (leaseId !== undefined && !this.stopped) this.schedule(0);
  }

  /** What was seen of this lease, if it is the last one watched. */
  seen(leaseId: string | undefined): LeaseView | undefined {
    return leaseId !== undefined && this.view?.lease === leaseId ? { ...this.view } : undefined;
  }

  stop(): void {
    this.stopped = true;
    this.track(undefined);
  }

  private record(id: string, now: number, ttl: number, granted: number): void {
    const v = this.view;
    if (v?.lease !== id) return;
    if (ttl < 0 || !Number.isFinite(ttl)) return;
    v.lastTtl = ttl;
    v.answeredAt = now;
    if (!Number.isFinite(granted) || granted <= 0) return;
    const lower = now - (granted - ttl) * 1000;
    v.renewedAtLeast = Math.max(v.renewedAtLeast ?? lower, lower);
  }

  private schedule(ms: number): void {
    this.timer = this.clock.setTimeout(() => void this.poll(), ms);
  }

  private async poll(): Promise<void> {
    const id = this.target;
    if (id === undefined || this.stopped) return;
    let ttl: number;
    let granted: number;
    try {
      const res = await this.leases.leaseTimeToLive({ ID: id, keys: false }, deadline(500));
      ttl = Number(res.TTL);
      granted = Number(res.grantedTTL);
    } catch {
      if (id === this.target) this.schedule(SLOW_POLL_MS);
      return;
    }
    const now = this.clock.now();
    if (id !== this.target) return;
    this.record(id, now, ttl, granted);
    if (ttl < 0) {
      // Already revoked: the watch on the election reports the key's deletion.
      this.target = undefined;
      return;
    }
    if (ttl > 0) {
      if (this.revokeAt !== undefined)
        this.logger.debug({ lease: id, ttl }, "the leader's lease was renewed in its last second");
      this.revokeAt = undefined;
      this.schedule(ttl <= 1 ? FAST_POLL_MS : SLOW_POLL_MS);
      return;
    }
    if (this.revokeAt === undefined) {
      this.revokeAt = now + 1000 + MARGIN_MS;
      this.logger.debug({ lease: id }, "the leader's lease has under a second left");
    }
    if (now < this.revokeAt) {
      this.schedule(Math.min(FAST_POLL_MS, this.revokeAt - now));
      return;
    }
    this.target = undefined;
    try {
      await this.leases.leaseRevoke({ ID: id }, deadline(1000));
      this.metrics.expiredLeasesRevoked.inc();
      this.logger.info({ lease: id }, "revoked the leader's expired lease without waiting for etcd's sweep");
    } catch (err) {
      // Swept meanwhile, or etcd is unreachable: either way etcd's own expiry still applies.
      this.logger.debug({ err: (err as Error).message, lease: id }, "could not revoke the expired lease");
    }
  }
}
