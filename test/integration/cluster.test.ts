/**
 * Process-level failure tests: a two-node cluster (child processes) on real etcd and MariaDB, fed by the Okta
 * simulator. After each failure the app store must equal the simulator's ground truth, and the history
 * checker must find no source event applied twice and no write of a deposed primary after a newer term's.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Cluster, type NodeProc } from "../support/cluster.js";
import { assertHistory } from "../support/history.js";
import { metricValue } from "../support/metrics.js";
import { diffWithTruth, type Truth, waitConverged, waitFor } from "../support/okta-sim.js";
import type { Arrival } from "../support/scim-proxy.js";

const TTL = 2000;
const isWrite = (a: Arrival) => a.method !== "GET";

describe("cluster failures (etcd + MariaDB + two nodes)", { timeout: 600_000 }, () => {
  let c: Cluster;

  before(async () => {
    c = await Cluster.start({ ttlMs: TTL, proxies: true });
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
  });
  after(async () => c.destroy());
  // Each scenario starts from two running nodes, whatever the one before it did.
  beforeEach(async () => {
    for (const n of c.alive()) n.proc!.kill("SIGCONT");
    for (const n of c.nodes) if (!c.alive().includes(n)) await c.startNode(n);
  });

  const converged = (what: string) => waitConverged(c.sim, (p) => c.scim(p), what);

  async function noEventAppliedTwice() {
    await assertHistory(c.query);
    const dupUsers = await c.query(
      "SELECT external_id, COUNT(*) AS n FROM scim_users GROUP BY external_id HAVING COUNT(*) > 1",
    );
    assert.deepEqual(dupUsers, [], "a user was created twice");
  }

  async function primaryWithCursor(): Promise<NodeProc> {
    let p: NodeProc | undefined;
    await waitFor("a primary that has applied events", async () => {
      p = await c.primary();
      return p !== undefined && (await c.status(p)).cursor !== null;
    });
    return p!;
  }

  it("SIGKILL of the primary while 2,000 events stream: nothing lost, nothing applied twice", async () => {
    await c.sim.control("POST", "/load", { users: 1000, updates: 1000, perSecond: 500, prefix: "kill" });
    const old = await primaryWithCursor();
    const t0 = Date.now();
    await c.kill(old, "SIGKILL");
    let next: NodeProc | undefined;
    await waitFor("the standby to take over", async () => {
      next = await c.primary();
      return next !== undefined && next !== old;
    });
    const tookOver = Date.now() - t0;
    await converged("the store to match the simulator after SIGKILL");
    const f = (await c.status(next!)).failovers[0];
    console.log(
      `SIGKILL failover: primary role after ${tookOver} ms; legs ${JSON.stringify(f.legsMs)}, total ${f.totalMs} ms (TTL ${TTL} ms)`,
    );
    // Every leg, from the dead primary's last acknowledged keepalive (read off its lease) to the first event.
    assert.equal(f.from, old.id);
    assert.equal(f.previousEnded, "lease-ran-out");
    const legs = f.legsMs;
    for (const leg of Object.values(legs)) assert.equal(typeof leg, "number", JSON.stringify(f));
    assert.ok(
      Math.abs(
        f.totalMs - (legs.lastKeepaliveToKeyGone + legs.keyGoneToElected + legs.electedToFirstEvent),
      ) <= 2,
      JSON.stringify(f),
    );
    assert.ok(Date.parse(f.lastKeepaliveAt) < Date.parse(f.keyGoneAt));
    assert.ok(Date.parse(f.keyGoneAt) <= Date.parse(f.at) && Date.parse(f.at) <= Date.parse(f.firstEventAt));
    assert.equal((await c.sim.control("GET", "/truth")).users.length, 1000);
    await noEventAppliedTwice();
  });

  it("a paused primary (SIGSTOP past its TTL) wakes up with a write on its way: the fence refuses it", async () => {
    const old = await primaryWithCursor();
    const oldTerm = (await c.status(old)).term as number;
    // Hold the old term's next write between its agent and its connector, as the network might.
    const pending = old.proxy!.hold((a) => isWrite(a) && a.token === String(oldTerm));
    await c.sim.control("POST", "/load", { users: 200, updates: 200, perSecond: 400, prefix: "zombie" });
    const held = await pending;
    // The standby's first write of its term: its raise of the fence.
    const standby = c.nodes.find((n) => n !== old)!;
    const newTermWrites = standby.proxy!.next((a) => isWrite(a) && Number(a.token) > oldTerm);
    await c.kill(old, "SIGSTOP");
    let next: NodeProc | undefined;
    await waitFor("the standby to take over", async () => {
      next = await c.primary();
      return next !== undefined && next !== old;
    });
    const newTerm = (await c.status(next!)).term as number;
    assert.ok(newTerm > oldTerm);
    assert.equal(next, standby);
    // The new term writes (its first request raises the fence, which must have landed)...
    const raise = await newTermWrites;
    assert.equal(raise.token, String(newTerm));
    await waitFor("the fence raise to be answered", async () => raise.status !== undefined);
    assert.equal(raise.status, 200);
    // ...then the zombie wakes, and its write reaches the connector after all.
    await c.kill(old, "SIGCONT");
    await held.forward();
    assert.equal(held.arrival.status, 409, "the connector took the deposed primary's write");
    assert.ok(metricValue(await c.metrics(old), "provisiond_fencing_rejections_total") >= 1);
    await waitFor("the old primary to report standby", async () => (await c.status(old)).role === "standby");
    assert.ok(
      metricValue(await c.metrics(old), "provisiond_self_demotions_total") >= 1,
      "the old primary demoted itself",
    );
    await converged("the store to match the simulator after the pause");
    assert.ok((await assertHistory(c.query)).terms.includes(newTerm), "the new term wrote");
    await noEventAppliedTwice();
  });

  it("SIGTERM hands over gracefully with nothing lost", async () => {
    const old = await primaryWithCursor();
    await c.sim.control("POST", "/load", { users: 200, updates: 100, perSecond: 300, prefix: "graceful" });
    const t0 = Date.now();
    await c.kill(old, "SIGTERM");
    let next: NodeProc | undefined;
    await waitFor("the standby to take over", async () => {
      next = await c.primary();
      return next !== undefined && next !== old;
    });
    const tookOver = Date.now() - t0;
    const term = (await c.status(next!)).term;
    await converged("the store to match the simulator after SIGTERM");
    // The handover's own record: on a loaded machine the new primary may have been re-elected since.
    const failovers = (await c.status(next!)).failovers;
    const f = failovers.find((x: { term: number }) => x.term === term);
    assert.equal(f?.from, old.id, JSON.stringify(failovers));
    console.log(
      `graceful handover: primary role ${tookOver} ms after SIGTERM; legs ${JSON.stringify(f.legsMs)}, total ${f.totalMs} ms from the old key's deletion`,
    );
    // The old primary let go of a live lease: the clock starts when its key went.
    assert.equal(f.previousEnded, "released");
    assert.equal(f.lastKeepaliveAt, null);
    assert.equal(f.legsMs.lastKeepaliveToKeyGone, null);
    assert.ok(Math.abs(f.totalMs - (f.legsMs.keyGoneToElected + f.legsMs.electedToFirstEvent)) <= 2);
    await noEventAppliedTwice();
  });

  it("an Okta 429 storm: the agent backs off and loses nothing", async () => {
    await primaryWithCursor();
    await c.sim.control("PUT", "/rate-limits", { storm: 25 });
    await c.sim.control("POST", "/load", { users: 150, updates: 50, prefix: "storm" });
    await converged("the store to match the simulator after a 429 storm");
    const stats = await c.sim.control("GET", "/stats");
    assert.ok(stats.rateLimited >= 25, `only ${stats.rateLimited} calls were refused`);
    const p = (await c.primary())!;
    const metrics = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
    assert.match(metrics, /provisiond_okta_rate_limit_remaining\{/);
    await noEventAppliedTwice();
  });

  it("MariaDB down: 503 with Retry-After, the cursor holds, and the backlog drains after restart", async () => {
    const p = await primaryWithCursor();
    const before = (await c.status(p)).cursor;
    await c.maria.stop();
    await c.sim.control("POST", "/load", { users: 100, prefix: "outage" });
    const res = await fetch(`http://127.0.0.1:${p.scimPort}/scim/v2/Users?count=1`, {
      headers: { authorization: `Bearer ${"test-token-0123456789abcdef"}` },
    });
    assert.equal(res.status, 503);
    assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
    await waitFor("the breaker to open", async () => (await c.status(p)).breaker.state !== "closed");
    assert.deepEqual(
      (await c.status(p)).cursor.published,
      before.published,
      "the cursor moved while the store was down",
    );
    await c.maria.restart();
    await converged("the backlog to drain after MariaDB returns");
    await noEventAppliedTwice();
  });

  it("etcd down: no node acts as primary; when it returns, processing resumes from the cursor", async () => {
    await primaryWithCursor();
    await c.etcd.stopAll();
    await waitFor(
      "every node to stop acting as primary",
      async () => (await c.primary()) === undefined,
      10_000,
    );
    for (const n of c.alive()) assert.notEqual((await c.status(n)).role, "primary");
    await c.sim.control("POST", "/load", { users: 50, prefix: "etcdloss" });
    await c.etcd.restartAll();
    await converged("processing to resume after etcd returns");
    await noEventAppliedTwice();
  });
});

describe("a cluster stopped before its first event (etcd + MariaDB + two nodes)", {
  timeout: 300_000,
}, () => {
  let c: Cluster;
  // No PROVISIOND_AGENT_START_AT: the cluster starts where its first primary was elected.
  before(async () => {
    c = await Cluster.start({ ttlMs: TTL, env: { PROVISIOND_AGENT_START_AT: "" } });
  });
  after(async () => c.destroy());

  it("loses nothing Okta recorded while every node was down", async () => {
    await waitFor("a primary that has polled the (empty) log", async () => {
      const p = await c.primary();
      return p !== undefined && (await c.sim.control("GET", "/stats")).apiCalls.logs >= 2;
    });
    for (const n of c.alive()) await c.kill(n, "SIGTERM");
    await c.sim.control("POST", "/load", { users: 20, prefix: "while-down" });
    for (const n of c.nodes) await c.startNode(n);
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
    // One more assignment after the restart: once it is in, the earlier ones must be in too.
    await c.sim.control("POST", "/load", { users: 1, prefix: "after-restart" });
    const marker = encodeURIComponent('userName eq "after-restart0@example.com"');
    await waitFor("the assignment made after the restart", async () => {
      return (await c.scim(`/Users?filter=${marker}`)).body.totalResults === 1;
    });
    const truth = (await c.sim.control("GET", "/truth")) as Truth;
    assert.deepEqual(
      await diffWithTruth((p) => c.scim(p), truth),
      [],
      "assignments made while down were lost",
    );
    await assertHistory(c.query);
  });
});
