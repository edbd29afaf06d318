/**
 * The self-demotion clock. etcd extends a lease from the moment it receives a keepalive, so once a keepalive
 * sent at time s is acknowledged, the lease cannot expire before s + TTL, and no other node can be elected
 * before then. This node stops acting as primary at s + TTL/2 unless a later keepalive is acknowledged. The
 * old and the new primary therefore never act at once, as long as both clocks tick at the same rate.
 *
 * The etcd3 package reports a lost lease only after about 2×TTL, far too late, so this clock is ours.
 */
export class LeaseHealth {
  private lastAckedSentAt: number | undefined;

  constructor(readonly ttlMs: number) {}

  /** A keepalive (or the grant) sent at `sentAt` was acknowledged by etcd. */
  acknowledged(sentAt: number): void {
    if (this.lastAckedSentAt === undefined || sentAt > this.lastAckedSentAt) this.lastAckedSentAt = sentAt;
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
 * agent also checks `healthy()` before every write).
 */
export class DemotionTimer {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly health: LeaseHealth,
    private readonly onExpire: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  arm(): void {
    this.disarm();
    const wait = Math.max(0, this.health.demoteAt() - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.health.healthy(this.now())) this.arm();
      else this.onExpire();
    }, wait);
  }

  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
