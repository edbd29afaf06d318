/** The Okta client against the simulator's rate limits: it paces itself before the budget runs out, and shows a wait. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { OktaClient, type OktaWait, resetOnLocalClock } from "../../src/agent/okta-client.js";
import { Metrics } from "../../src/observability/metrics.js";
import { SIM_TOKEN, SimHandle } from "../support/okta-sim.js";

const LOGS = `/api/v1/logs?since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`;

describe("okta client and the rate limits", () => {
  let sim: SimHandle;
  const halt = new AbortController();
  let okta: OktaClient;
  before(async () => {
    // The simulator's budgets are per clock minute: start clear of a boundary, so both tests see one window.
    const toBoundary = 60_000 - (Date.now() % 60_000);
    if (toBoundary < 3_000) await sleep(toBoundary + 10);
    sim = await SimHandle.start({ oktaBudgets: true });
    sim.sim.limiter.config.perMinute.logs = 8;
    okta = new OktaClient({
      orgUrl: sim.url,
      token: SIM_TOKEN,
      metrics: new Metrics("t"),
      logger: pino({ level: "silent" }),
      halt: halt.signal,
    });
  });
  after(async () => {
    halt.abort();
    await okta.close();
    await sim.stop();
  });

  it("spreads the calls left over the time to the reset once under a quarter of the budget is left", async () => {
    assert.equal(okta.paceMs("logs"), 0, "nothing known yet");
    for (let i = 0; i < 5; i++) await okta.get(LOGS); // 3 of 8 left: above a quarter
    assert.equal(okta.paceMs("logs"), 0);
    await okta.get(LOGS); // 2 of 8 left
    const now = Date.now();
    const resetMs = Math.ceil((now - (now % 60_000) + 60_000) / 1000) * 1000;
    const pace = okta.paceMs("logs", now);
    assert.equal(pace, Math.ceil((resetMs - now) / 2));
  });

  it("a spent budget is a wait until the reset, shown while it lasts", async () => {
    let seen: unknown;
    okta.onWait = (w) => {
      seen = w;
    };
    await okta.get(LOGS);
    await okta.get(LOGS); // the last call of the budget: Remaining 0
    const pending = okta.get(LOGS).catch((err: Error) => err);
    await new Promise((r) => setImmediate(r));
    const w = okta.waiting;
    assert.ok(w, "the client says it is waiting");
    assert.deepEqual(seen, w);
    assert.equal(w.bucket, "logs");
    assert.equal(w.reason, "rate-limit");
    assert.ok(Date.parse(w.until) > Date.now());
    halt.abort();
    assert.equal(((await pending) as Error).name, "Stopped");
    assert.equal(okta.waiting, undefined, "the wait is over once the call ends");
  });

  it("a caught-up agent's slower poll (pace) is shown as such, and is not a stall", async () => {
    // The window so far spent 8 calls; a limit of 11 leaves 2 after one more: under a quarter.
    sim.sim.limiter.config.perMinute.logs = 11;
    const stop = new AbortController();
    const fresh = new OktaClient({
      orgUrl: sim.url,
      token: SIM_TOKEN,
      metrics: new Metrics("t"),
      logger: pino({ level: "silent" }),
      halt: stop.signal,
    });
    const stalls: OktaWait[] = [];
    fresh.onWait = (w) => stalls.push(w);
    await fresh.get(LOGS);
    assert.ok(fresh.paceMs("logs") > 0, "2 of 11 left: pacing");
    const paced = fresh.pace("logs", 0).catch((err: Error) => err);
    await new Promise((r) => setImmediate(r));
    assert.equal(fresh.waiting?.reason, "pace");
    assert.deepEqual(stalls, [], "pacing is not reported as a stall");
    stop.abort();
    assert.equal(((await paced) as Error).name, "Stopped");
    assert.equal(fresh.waiting, undefined);
    await fresh.close();
  });
});

describe("okta client: failures are waits too", { timeout: 30_000 }, () => {
  const client = (orgUrl: string, halt: AbortSignal) =>
    new OktaClient({
      orgUrl,
      token: SIM_TOKEN,
      metrics: new Metrics("t"),
      logger: pino({ level: "silent" }),
      halt,
    });

  it("an unreachable Okta is a wait (reason unreachable), so the agent's lag counts while it lasts", async () => {
    // Cuts the first connection without an answer, then answers an empty page.
    let calls = 0;
    const server = createServer((req, res) => {
      if (calls++ === 0) return req.socket.destroy();
      res.setHeader("content-type", "application/json");
      res.end("[]");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const halt = new AbortController();
    const okta = client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, halt.signal);
    const waits: OktaWait[] = [];
    okta.onWait = (w) => {
      waits.push({ ...w });
      assert.deepEqual(okta.waiting, w, "shown while it lasts");
    };
    await okta.get(LOGS);
    assert.deepEqual(
      waits.map((w) => [w.reason, w.bucket]),
      [["unreachable", "logs"]],
    );
    assert.equal(okta.waiting, undefined, "the wait is over once the call has an answer");
    halt.abort();
    await okta.close();
    await new Promise((r) => server.close(r));
  });

  it("a 5xx from Okta is a wait (reason 5xx) before the retry", async () => {
    const sim = await SimHandle.start();
    await sim.control("PUT", "/faults", { faults: [{ pathPrefix: "/api/v1/logs", status: 500, count: 1 }] });
    const halt = new AbortController();
    const okta = client(sim.url, halt.signal);
    const waits: OktaWait[] = [];
    okta.onWait = (w) => waits.push(w);
    const page = await okta.get(LOGS);
    assert.deepEqual(
      waits.map((w) => w.reason),
      ["5xx"],
    );
    assert.ok(Array.isArray(page.items), "the retry after the wait succeeded");
    assert.equal(okta.waiting, undefined);
    halt.abort();
    await okta.close();
    await sim.stop();
  });
});

describe("resetOnLocalClock: X-Rate-Limit-Reset on this host's clock", () => {
  const now = Date.parse("2026-12-02T12:00:00.400Z");
  const reset = String(Date.parse("2026-12-02T12:00:30Z") / 1000);
  it("clocks that agree within the Date header's resolution: the reset as sent", () => {
    assert.equal(
      resetOnLocalClock(reset, "Wed, 02 Dec 2026 12:00:00 GMT", now),
      Date.parse("2026-12-02T12:00:30Z"),
    );
    assert.equal(resetOnLocalClock(reset, undefined, now), Date.parse("2026-12-02T12:00:30Z"));
  });
  it("Okta's clock 10 s ahead of this host: the reset comes 10 s sooner here", () => {
    assert.equal(
      resetOnLocalClock(reset, "Wed, 02 Dec 2026 12:00:10 GMT", now),
      Date.parse("2026-12-02T12:00:20Z") + 400,
    );
  });
  it("a reset hours ahead (a host clock far behind, or a bad header) is capped at one window", () => {
    const far = String(Date.parse("2026-12-02T15:00:00Z") / 1000);
    assert.equal(resetOnLocalClock(far, undefined, now), now + 61_000);
  });
  it("no reset header, or one that is not a number: unknown", () => {
    assert.equal(resetOnLocalClock(undefined, undefined, now), undefined);
    assert.equal(resetOnLocalClock("soon", undefined, now), undefined);
    assert.equal(resetOnLocalClock("", undefined, now), undefined, "Number('') is 0, not a reset");
    assert.equal(resetOnLocalClock(["1", "2"], undefined, now), undefined);
  });
});
