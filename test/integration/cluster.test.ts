/**
 * Process-level failure tests: a two-node cluster (child processes) on real etcd and MariaDB, fed by the Okta
 * simulator. After each failure the app store must equal the simulator's ground truth, no source event may
 * have been applied twice, and no write from a deposed primary may have landed.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Cluster, type NodeProc } from "../support/cluster.js";
import { diffWithTruth, type Truth, waitFor } from "../support/okta-sim.js";

const TTL = 2000;

describe("cluster failures (etcd + MariaDB + two nodes)", () => {
  let c: Cluster;
  let lastDiff: string[] = [];

  before(async () => {
    c = await Cluster.start({ ttlMs: TTL });
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
  });
  after(async () => c.destroy());
  // Each scenario starts from two running nodes, whatever the one before it did.
  beforeEach(async () => {
    for (const n of c.alive()) n.proc!.kill("SIGCONT");
    for (const n of c.nodes) if (!c.alive().includes(n)) await c.startNode(n);
  });

  const converged = async () => {
    const truth = (await c.sim.control("GET", "/truth")) as Truth;
    lastDiff = await diffWithTruth((p) => c.scim(p), truth);
    return lastDiff.length === 0;
  };
  const waitConverged = (what: string) =>
    waitFor(what, converged, 120_000).catch((err) => {
      throw new Error(
        `${err.message}: ${lastDiff.length} differences, e.g. ${lastDiff.slice(0, 3).join("; ")}`,
      );
    });

  async function noEventAppliedTwice() {
    const twice = await c.query(
      "SELECT idempotency_key, COUNT(*) AS n FROM scim_audit WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key HAVING COUNT(*) > 1",
    );
    assert.deepEqual(twice, [], "an idempotency key (source event) was applied twice");
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
    await waitConverged("the store to match the simulator after SIGKILL");
    const f = (await c.status(next!)).failovers[0];
    console.log(
      `SIGKILL failover: primary role after ${tookOver} ms; from lease expiry: elected ${f.electedAfterMs} ms, first event ${f.firstEventAfterMs} ms (TTL ${TTL} ms)`,
    );
    assert.equal((await c.sim.control("GET", "/truth")).users.length, 1000);
    await noEventAppliedTwice();
  });

  it("a paused primary (SIGSTOP past its TTL) demotes itself on SIGCONT, and none of its writes land", async () => {
    const old = await primaryWithCursor();
    const oldTerm = (await c.status(old)).term as number;
    await c.sim.control("POST", "/load", { users: 200, updates: 200, perSecond: 400, prefix: "zombie" });
    await c.kill(old, "SIGSTOP");
    let next: NodeProc | undefined;
    await waitFor("the standby to take over", async () => {
      next = await c.primary();
      return next !== undefined && next !== old;
    });
    const newTerm = (await c.status(next!)).term as number;
    assert.ok(newTerm > oldTerm);
    await c.kill(old, "SIGCONT");
    await waitFor("the old primary to report standby", async () => (await c.status(old)).role === "standby");
    await waitConverged("the store to match the simulator after the pause");
    const metrics = await (await fetch(`http://127.0.0.1:${old.adminPort}/metrics`)).text();
    assert.match(metrics, /provisiond_self_demotions_total\{[^}]*\} [1-9]/, "the old primary demoted itself");
    // The first write of the new term raised the fence; nothing with the old term was recorded after it.
    const [first] = await c.query<{ t: string }>(
      "SELECT MIN(created_at) AS t FROM provisiond_idempotency WHERE fencing_token = ?",
      [newTerm],
    );
    const stale = await c.query(
      "SELECT idem_key FROM provisiond_idempotency WHERE fencing_token < ? AND created_at > ?",
      [newTerm, first!.t],
    );
    assert.deepEqual(stale, [], "a write from the deposed primary landed");
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
    await waitConverged("the store to match the simulator after SIGTERM");
    const f = (await c.status(next!)).failovers[0];
    console.log(
      `graceful handover: primary role ${tookOver} ms after SIGTERM; elected ${f.electedAfterMs} ms and first event ${f.firstEventAfterMs} ms after the old key was deleted`,
    );
    assert.equal(f.from, old.id);
    await noEventAppliedTwice();
  });

  it("an Okta 429 storm: the agent backs off and loses nothing", async () => {
    await primaryWithCursor();
    await c.sim.control("PUT", "/rate-limits", { storm: 25 });
    await c.sim.control("POST", "/load", { users: 150, updates: 50, prefix: "storm" });
    await waitConverged("the store to match the simulator after a 429 storm");
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
    await waitConverged("the backlog to drain after MariaDB returns");
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
    await waitConverged("processing to resume after etcd returns");
    await noEventAppliedTwice();
  });
});
