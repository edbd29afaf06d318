/** The election timing invariant, with fake timers: self-demotion strictly before a standby can win. */
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import fc from "fast-check";
import { DemotionTimer, LeaseHealth } from "../../src/cluster/lease-health.js";

describe("self-demotion timing", () => {
  it("demotes at TTL/2 after the last acknowledged keepalive, before the lease can expire", () => {
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    try {
      const ttl = 2400;
      const health = new LeaseHealth(ttl);
      let demotedAt: number | undefined;
      const fakeClock = {
        now: () => Date.now(),
        setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
        clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
      };
      const timer = new DemotionTimer(
        health,
        () => {
          demotedAt = Date.now();
        },
        fakeClock,
      );
      // Keepalives every TTL/6, acknowledged 50 ms later, until etcd goes silent after the one sent at 1000.
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

  it("holds for any keepalive schedule, delay and TTL", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2000, max: 30_000 }),
        fc.array(
          fc.record({
            gap: fc.integer({ min: 1, max: 20_000 }),
            rtt: fc.integer({ min: 0, max: 20_000 }),
            lost: fc.boolean(),
          }),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        (ttl, keepalives) => {
          const health = new LeaseHealth(ttl);
          let t = 0;
          for (const k of keepalives) {
            t += k.gap;
            const sent = t;
            // The reply comes rtt later (or never); etcd extended the lease when the request arrived,
            // which is no earlier than when it was sent.
            if (!k.lost) health.acknowledge(sent, sent + k.rtt);
            for (const probe of [sent, sent + k.rtt, sent + ttl / 2, sent + ttl]) {
              if (health.healthy(probe)) assert.ok(probe < health.earliestTakeover());
            }
          }
          assert.ok(
            health.demoteAt() < health.earliestTakeover() || health.demoteAt() === Number.NEGATIVE_INFINITY,
          );
        },
      ),
      { seed: 3, numRuns: 500 },
    );
  });

  it("is never healthy before the first acknowledgement", () => {
    const h = new LeaseHealth(5000);
    assert.equal(h.healthy(0), false);
    h.acknowledge(100, 100);
    assert.equal(h.healthy(2599), true);
    assert.equal(h.healthy(2600), false);
  });
});
