/** The Okta client against the simulator's rate limits: it paces itself before the budget runs out, and shows a wait. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { OktaClient } from "../../src/agent/okta-client.js";
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
});
