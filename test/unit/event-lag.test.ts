/** The one definition of event lag (src/agent/event-lag.ts), on an injected clock. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EventLag } from "../../src/agent/event-lag.js";

const T0 = Date.parse("2026-12-01T10:00:00Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();

function clock(start = 0) {
  let t = T0 + start;
  return { now: () => t, set: (ms: number) => (t = T0 + ms) };
}

describe("event lag", () => {
  it("is unknown before the first poll of a new cluster, and 0 once a poll reaches the end", () => {
    const c = clock(5_000);
    const lag = new EventLag(undefined, c.now);
    assert.equal(lag.seconds(), null);
    assert.equal(lag.caughtUp, false);
    assert.equal(lag.lastPollAt, null);
    lag.read([], T0 + 5_000);
    assert.equal(lag.seconds(), 0);
    assert.equal(lag.caughtUp, true);
    assert.equal(lag.lastPollAt, at(5_000));
  });

  it("stays 0 while idle polls keep reaching the end, however old the last event is", () => {
    const c = clock(0);
    const lag = new EventLag(at(-3_600_000), c.now);
    lag.read([], T0);
    c.set(60_000);
    assert.equal(lag.seconds(), 0);
    lag.read([], T0 + 60_000);
    c.set(120_000);
    assert.equal(lag.seconds(), 0);
  });

  it("is the age of the oldest event read and not yet applied", () => {
    const c = clock(10_000);
    const lag = new EventLag(at(0), c.now);
    lag.read([{ published: at(4_000) }, { published: at(9_000) }], T0 + 10_000);
    assert.equal(lag.caughtUp, false);
    assert.equal(lag.seconds(), 6);
    c.set(12_000);
    assert.equal(lag.seconds(), 8);
    lag.applied(at(9_000));
    assert.equal(lag.seconds(), 0, "that poll reached the end: applying it catches up");
    assert.equal(lag.caughtUp, true);
  });

  it("between batches of a backlog, counts from the last event applied", () => {
    const c = clock(30_000);
    const lag = new EventLag(at(0), c.now);
    lag.read([{ published: at(1_000) }, { published: at(2_000) }], undefined); // more pages wait
    lag.applied(at(2_000));
    assert.equal(lag.caughtUp, false);
    assert.equal(lag.seconds(), 28);
  });

  it("counts from the last poll that reached the end once polls fail or wait", () => {
    const c = clock(0);
    const lag = new EventLag(at(-3_600_000), c.now);
    lag.read([], T0 + 1_000);
    c.set(5_000);
    lag.stalled();
    assert.equal(lag.caughtUp, false);
    assert.equal(lag.seconds(), 4);
    c.set(65_000);
    assert.equal(lag.seconds(), 64);
    lag.read([], T0 + 65_000);
    assert.equal(lag.seconds(), 0);
  });

  it("an event published before the newest instant known applied does not move it back", () => {
    const c = clock(10_000);
    const lag = new EventLag(at(0), c.now);
    lag.read([], T0 + 9_000);
    lag.stalled();
    lag.read([{ published: at(8_000) }], undefined); // Okta logged it late
    lag.applied(at(8_000));
    assert.equal(lag.seconds(), 1);
  });
});
