/**
 * The self-demotion clock. etcd extends a lease from the moment it receives a keepalive, so once a keepalive
 * sent at time s is acknowledged, the lease cannot expire before s + TTL, and no other node can be elected
 * before then. This node stops acting as primary at s + TTL/2 unless a later keepalive is acknowledged. The
 * old and the new primary therefore never act at once, as long as both clocks tick at the same rate.
 *
 * Times are on a monotonic clock (src/cluster/clock.ts), so a wall-clock step changes nothing here.
 * The etcd3 package reports a lost lease only after about 2×TTL, far too late, so this clock is ours.
 */
import { type Clock, monotonicClock } from "./clock.js";

export type Acknowledgement = "renewed" | "too-late";

export class LeaseHealth {
  private lastAckedSentAt: number | undefined;

  constructor(readonly ttlMs: number) {}

  /**
   * A keepalive (or the grant) sent at `sentAt` was acknowledged by etcd at `receivedAt`. An answer that comes
   * after the demotion deadline renews nothing: this node has already stopped, and a standby may be revoking
   * the lease (LeaseSweeper), so the lease is never trusted again.
   */
  acknowledge(sentAt: number, receivedAt: number): Acknowledgement {
    if (this.lastAckedSentAt !== undefined && !this.healthy(receivedAt)) return "too-late";
    if (this.lastAckedSentAt === undefined || sentAt > this.lastAckedSentAt) this.lastAckedSentAt = sentAt;
    return "renewed";
  }

  /** When this node must have stopped acting as primary. */
  demoteAt(): number {
    return this.lastAckedSentAt === undefined
      ? Number.NEGATIVE_INFINITY
      : this.lastAckedSentAt + this.ttlMs / 2;
  }

  /** The earliest moment etcd can expire the lease, and so the earliest a standby can win. */
  earliestTakeover(): number {
    return this.lastAckedSentAt === undefined ? Number.NEGATIVE_INFINITY : this.lastAckedSentAt + this.ttlMs;
  }

  healthy(now: number): boolean {
    return now < this.demoteAt();
  }

  /** Milliseconds since the last acknowledged keepalive was sent. */
  age(now: number): number | undefined {
    return this.lastAckedSentAt === undefined ? undefined : now - this.lastAckedSentAt;
  }

  reset(): void {
    this.lastAckedSentAt = undefined;
  }
}

/**
 * Fires `onExpire` at the demotion deadline unless acknowledgements keep pushing it back. Timer-driven so a
 * primary stops on time even when nothing else happens (a blocked event loop delays it, which is why the
 * agent also checks its term before every write).
 */
export class DemotionTimer {
  private timer: unknown;

  constructor(
    private readonly health: LeaseHealth,
    private readonly onExpire: () => void,
    private readonly clock: Clock = monotonicClock,
  ) {}

  arm(): void {
    this.disarm();
    const wait = Math.max(0, this.health.demoteAt() - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.health.healthy(this.clock.now())) this.arm();
      else this.onExpire();
    }, wait);
  }

  disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
