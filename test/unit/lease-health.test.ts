/**
 * The election's timing invariants: a primary stops acting before its lease can expire, and the standby's
 * LeaseSweeper never revokes a lease that a still-acting primary holds. Fake timers for the demotion clock,
 * and a property test that drives the real LeaseHealth and LeaseSweeper against a model of etcd's lease: its
 * whole-second, truncated TTL answers, its own expiry sweep, and arbitrary network delays and losses.
 */
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import fc from "fast-check";
import pino from "pino";
import type { Clock } from "../../src/cluster/clock.js";
import { Election } from "../../src/cluster/election.js";
import { DemotionTimer, LeaseHealth } from "../../src/cluster/lease-health.js";
import { type LeaseApi, LeaseSweeper } from "../../src/cluster/lease-sweeper.js";
import { Metrics } from "../../src/observability/metrics.js";

const silent = pino({ level: "silent" });

/** A discrete-event clock: timers run in time order, and promises settle between them. */
class SimClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly queue: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const h = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.queue.push(h);
    return h;
  }
  clearTimeout(h: unknown): void {
    (h as { cancelled: boolean }).cancelled = true;
  }
  /** Resolves after `ms` of simulated time. */
  delay(ms: number): Promise<void> {
    return new Promise((r) => this.setTimeout(r, ms));
  }
  /** Runs timers until none is left or `done()` says so; `each` runs after every one. */
  async run(done: () => boolean, each: () => void): Promise<void> {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const live = this.queue.filter((h) => !h.cancelled);
      if (live.length === 0 || done()) return;
      const next = live.reduce((a, b) => (a.at < b.at || (a.at === b.at && a.seq < b.seq) ? a : b));
      this.queue.splice(this.queue.indexOf(next), 1);
      this.t = next.at;
      next.fn();
      each();
    }
  }
}

describe("self-demotion timing", () => {
  it("demotes at TTL/2 after the last acknowledged keepalive, before the lease can expire", () => {
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    try {
      const ttl = 2400;
      const health = new LeaseHealth(ttl);
      let demotedAt: number | undefined;
      const fakeClock: Clock = {
        now: () => Date.now(),
        setTimeout: (fn, ms) => setTimeout(fn, ms),
        clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      };
      const timer = new DemotionTimer(
        health,
        () => {
          demotedAt = Date.now();
        },
        fakeClock,
      );
      // Keepalives every TTL/6, acknowledged 50 ms later, until etcd goes silent after the one sent at 800.
      for (let sent = 0; sent <= 1000; sent += ttl / 6) {
        mock.timers.tick(sent - Date.now());
        const s = Date.now();
        mock.timers.tick(50);
        health.acknowledge(s, Date.now());
        timer.arm();
      }
      const lastSent = 800;
      // Step a millisecond at a time so the clock the callback reads is the moment it fires.
      for (let i = 0; i < 5000 && demotedAt === undefined; i++) mock.timers.tick(1);
      assert.equal(demotedAt, lastSent + ttl / 2);
      assert.ok(demotedAt! < health.earliestTakeover(), "the primary stops before any standby can win");
    } finally {
      mock.timers.reset();
    }
  });

  it("a keepalive answered after the demotion deadline renews nothing, even one sent just before it", () => {
    const h = new LeaseHealth(2000);
    assert.equal(h.acknowledge(0, 20), "renewed");
    assert.equal(h.demoteAt(), 1000);
    // Sent 1 ms before the deadline and answered 1 ms after it: too late, the node has stopped.
    assert.equal(h.acknowledge(999, 1001), "too-late");
    assert.equal(h.healthy(1001), false);
    assert.equal(h.demoteAt(), 1000, "the late answer did not move the deadline");
    // Answered 1 ms before the deadline instead: it renews from when it was sent.
    const g = new LeaseHealth(2000);
    g.acknowledge(0, 20);
    assert.equal(g.acknowledge(998, 999), "renewed");
    assert.equal(g.demoteAt(), 1998);
  });

  it("is never healthy before the first acknowledgement", () => {
    const h = new LeaseHealth(5000);
    assert.equal(h.healthy(0), false);
    h.acknowledge(100, 100);
    assert.equal(h.healthy(2599), true);
    assert.equal(h.healthy(2600), false);
  });

  it("runs on a monotonic clock: a wall-clock step back does not lengthen a term", {
    timeout: 10_000,
  }, async () => {
    const health = new LeaseHealth(200);
    mock.timers.enable({ apis: ["Date"], now: Date.now() });
    try {
      let expired!: () => void;
      const demoted = new Promise<void>((r) => {
        expired = r;
      });
      // The default clock, as the election uses it.
      const timer = new DemotionTimer(health, expired);
      health.acknowledge(performance.now(), performance.now());
      timer.arm();
      // An hour back, as an NTP correction or an operator might set it.
      mock.timers.setTime(Date.now() - 3_600_000);
      await demoted;
      assert.equal(health.healthy(performance.now()), false);
    } finally {
      mock.timers.reset();
    }
  });

  it("an election refuses a TTL etcd cannot keep or that leaves no room to act", () => {
    const o = { client: {} as never, root: "/x", nodeId: "n", logger: silent, metrics: new Metrics("n") };
    assert.throws(() => new Election({ ...o, ttlMs: 1000 }), /at least 2000 ms/);
    assert.throws(() => new Election({ ...o, ttlMs: 2500 }), /whole seconds/);
    new Election({ ...o, ttlMs: 2000 });
  });
});

describe("self-demotion and the lease sweeper against etcd's whole-second TTL answers", () => {
  // Mostly a LAN's few milliseconds, sometimes a long stall.
  const delay = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 30 }), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: 1500 }), weight: 1 },
  );
  const scenario = fc.record({
    ttlSeconds: fc.integer({ min: 2, max: 6 }),
    keepalives: fc.array(
      fc.record({ gap: fc.integer({ min: 1, max: 4000 }), up: delay, down: delay, lost: fc.boolean() }),
      { minLength: 0, maxLength: 25 },
    ),
    pollDelays: fc.array(fc.record({ up: delay, down: delay }), { minLength: 1, maxLength: 10 }),
    /** etcd's own expiry sweep runs every 500 ms, and later under load; the sweeper should beat it. */
    sweepLag: fc.integer({ min: 0, max: 5000 }),
  });

  it("a healthy primary's lease has not expired, and the sweeper revokes only an expired lease of a stopped primary", async () => {
    let revokedBySweeper = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const clock = new SimClock();
        const ttl = sc.ttlSeconds * 1000;
        // etcd's side: the lease expires TTL after the last renewal that reached it.
        let expiry = ttl;
        let revokedAt: number | undefined;
        let sweptByUs: number | undefined;
        const expired = (t: number) => revokedAt !== undefined || t >= expiry;
        const server = <T>(up: number, down: number, at: (t: number) => T): Promise<T> =>
          clock.delay(up).then(() => {
            const v = at(clock.now());
            return clock.delay(down).then(() => v);
          });
        let poll = 0;
        const leases: LeaseApi = {
          leaseTimeToLive: (() => {
            const d = sc.pollDelays[poll++ % sc.pollDelays.length]!;
            // Truncated whole seconds; -1 once revoked.
            return server(d.up, d.down, (t) => ({
              TTL: String(revokedAt !== undefined ? -1 : Math.trunc((expiry - t) / 1000)),
            }));
          }) as unknown as LeaseApi["leaseTimeToLive"],
          leaseRevoke: (() => {
            const d = sc.pollDelays[poll++ % sc.pollDelays.length]!;
            return server(d.up, d.down, (t) => {
              if (revokedAt !== undefined) throw new Error("lease not found");
              revokedAt = sweptByUs = t;
              return {};
            });
          }) as unknown as LeaseApi["leaseRevoke"],
        };
        const sweeper = new LeaseSweeper({ leaseClient: leases }, silent, new Metrics("s"), clock);
        // etcd's own sweep revokes an expired lease a little later.
        const etcdSweep = () => {
          if (revokedAt === undefined && clock.now() >= expiry + sc.sweepLag) revokedAt = clock.now();
        };

        // The primary's side: the grant at 0, then its keepalives until it stops (or gives the lease up).
        const health = new LeaseHealth(ttl);
        health.acknowledge(0, 0);
        /** The expiry of the newest renewal the primary accepted: the lease it relies on lasts until then. */
        let trusted = ttl;
        let gaveUp = false;
        let sent = 0;
        for (const k of sc.keepalives) {
          sent += k.gap;
          const at = sent;
          clock.setTimeout(() => {
            if (gaveUp) return;
            void server(k.up, k.down, (t) => {
              if (k.lost || expired(t)) return undefined;
              expiry = t + ttl;
              return expiry;
            }).then((renewedTo) => {
              if (renewedTo === undefined) return;
              if (health.acknowledge(at, clock.now()) === "too-late") gaveUp = true;
              else trusted = Math.max(trusted, renewedTo);
            });
          }, at);
        }
        sweeper.track("lease");
        const violations: string[] = [];
        await clock.run(
          () => revokedAt !== undefined && clock.now() > revokedAt + 5000,
          () => {
            etcdSweep();
            const now = clock.now();
            if (health.healthy(now))
              assert.ok(
                now < expiry && revokedAt === undefined,
                `acting at ${now} on a lease gone at ${expiry}`,
              );
          },
        );
        sweeper.stop();
        if (sweptByUs !== undefined) revokedBySweeper++;
        if (sweptByUs !== undefined && sweptByUs < trusted)
          violations.push(
            `revoked at ${sweptByUs}, before the lease the primary relied on expired at ${trusted}`,
          );
        if (sweptByUs !== undefined && health.demoteAt() > sweptByUs)
          violations.push(
            `the primary acts until ${health.demoteAt()}, after the sweeper revoked at ${sweptByUs}`,
          );
        assert.deepEqual(violations, []);
      }),
      { seed: 7, numRuns: 200 },
    );
    // The property means something only if the sweeper did revoke, often.
    assert.ok(revokedBySweeper >= 50, `the sweeper revoked in only ${revokedBySweeper} of 200 runs`);
  });
});
