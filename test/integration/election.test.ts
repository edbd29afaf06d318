/** Leader election against a real etcd: one primary, graceful handover, a crashed primary, and etcd loss. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { EtcdCursor } from "../../src/cluster/cursor.js";
import { Election } from "../../src/cluster/election.js";
import { etcdClient } from "../../src/cluster/etcd.js";
import { Leadership } from "../../src/cluster/leadership.js";
import { Metrics } from "../../src/observability/metrics.js";
import { EtcdCluster } from "../support/etcd.js";

const TTL = 2000;
const silent = pino({ level: "silent" });

function node(etcd: EtcdCluster, nodeId: string, root: string) {
  const client = etcdClient({ endpoints: etcd.endpoints });
  const election = new Election({
    client,
    root,
    nodeId,
    ttlMs: TTL,
    logger: silent,
    metrics: new Metrics(nodeId),
  });
  return { client, election };
}

const elected = (e: Election) =>
  e.role === "primary" ? Promise.resolve() : once(e, "elected").then(() => undefined);

describe("election on etcd", () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await EtcdCluster.start(1);
  });
  after(async () => etcd.destroy());

  it("elects exactly one primary and hands over on resign", async () => {
    const a = node(etcd, "a", "/t1");
    const b = node(etcd, "b", "/t1");
    await a.election.start();
    await elected(a.election);
    await b.election.start();
    await once(b.election, "leader").catch(() => undefined);
    assert.equal(a.election.role, "primary");
    assert.equal(b.election.role, "standby");
    const termA = a.election.term!;
    const t0 = Date.now();
    const bElected = elected(b.election);
    await a.election.resign();
    await bElected;
    console.log(`graceful handover: standby elected ${Date.now() - t0} ms after resign (TTL ${TTL} ms)`);
    assert.ok(b.election.term! > termA, "the fencing token grows with the term");
    assert.equal(b.election.failovers[0]?.from, "a");
    await a.election.stop();
    await b.election.stop();
    a.client.close();
    b.client.close();
  });

  it("a primary cut off from etcd demotes itself before the standby can win", async () => {
    const a = node(etcd, "a", "/t2");
    const b = node(etcd, "b", "/t2");
    await a.election.start();
    await elected(a.election);
    await b.election.start();
    const events: string[] = [];
    a.election.on("demoted", ({ reason }) => events.push(`a demoted (${reason})`));
    const bElected = once(b.election, "elected").then(() => events.push("b elected"));
    const t0 = Date.now();
    // A crash as etcd sees it: the primary's keepalives stop arriving, and its key is never deleted.
    a.client.close();
    await bElected;
    console.log(
      `crash failover: standby elected ${Date.now() - t0} ms after the primary went silent (TTL ${TTL} ms)`,
    );
    assert.deepEqual(events, ["a demoted (keepalive)", "b elected"]);
    assert.equal(a.election.isPrimary(), false);
    await b.election.stop();
    b.client.close();
    await a.election.stop();
  });

  it("no node acts as primary while etcd is down, and one is elected again when it returns", async () => {
    const a = node(etcd, "a", "/t3");
    const b = node(etcd, "b", "/t3");
    await a.election.start();
    await b.election.start();
    await Promise.race([elected(a.election), elected(b.election)]);
    const primary = a.election.role === "primary" ? a.election : b.election;
    const demoted = once(primary, "demoted");
    await etcd.stopAll();
    const [{ reason }] = (await demoted) as [{ reason: string }];
    assert.notEqual(reason, "resigned");
    assert.equal(a.election.isPrimary() || b.election.isPrimary(), false);
    await etcd.restartAll();
    await Promise.race([elected(a.election), elected(b.election)]);
    assert.equal([a.election, b.election].filter((e) => e.isPrimary()).length, 1);
    await a.election.stop();
    await b.election.stop();
    a.client.close();
    b.client.close();
  });

  it("the cursor moves only for the current term, and the starting position is stored once", async () => {
    const a = node(etcd, "a", "/t4");
    const b = node(etcd, "b", "/t4");
    await a.election.start();
    await elected(a.election);
    const leadA = a.election.current!;
    const cursor = new EtcdCursor(a.client, "/t4/cursor");
    const at = (position: string) => ({ position, updatedAt: new Date().toISOString() });
    assert.equal((await cursor.start(leadA, at("start")))?.position, "start");
    assert.equal(await cursor.advance(leadA, at("p1")), true);
    await b.election.start();
    const bElected = elected(b.election);
    await a.election.resign();
    await bElected;
    // A zombie that still believes it leads (its clock says so): etcd's guard refuses it.
    const zombie = new Leadership(leadA.term, leadA.campaignKey);
    assert.equal(zombie.isCurrent(), true);
    assert.equal(await cursor.advance(zombie, at("stale")), false);
    assert.equal((await cursor.read())?.position, "p1");
    // Nor can it store a new cluster's starting position.
    const fresh = new EtcdCursor(a.client, "/t4/fresh-cursor");
    assert.equal(await fresh.start(zombie, at("zombie start")), undefined);
    assert.equal(await fresh.read(), undefined);
    // The current term can, once: a later start finds the first position.
    const leadB = b.election.current!;
    assert.equal((await fresh.start(leadB, at("first")))?.position, "first");
    assert.equal((await fresh.start(leadB, at("second")))?.position, "first");
    assert.equal(await cursor.advance(leadB, at("p2")), true);
    await b.election.stop();
    await a.election.stop();
    a.client.close();
    b.client.close();
  });

  it("a primary whose lease went stale says it is no primary, in /status and provisiond_leader, before its demotion timer runs", async () => {
    // A node just unfrozen: its clock has jumped past the lease, its timers have not run yet.
    let now = 0;
    const clock = { now: () => now, setTimeout: () => undefined, clearTimeout: () => undefined };
    const client = etcdClient({ endpoints: etcd.endpoints });
    const metrics = new Metrics("frozen");
    const e = new Election({
      client,
      root: "/t-frozen",
      nodeId: "frozen",
      ttlMs: TTL,
      logger: silent,
      metrics,
      clock,
    });
    try {
      await e.start();
      await elected(e);
      assert.equal(e.status().role, "primary");
      assert.match(await metrics.registry.metrics(), /^provisiond_leader\{[^}]*\} 1$/m);
      now += TTL * 2;
      assert.equal(e.role, "primary", "the demotion timer has not run");
      assert.equal(e.status().role, "standby");
      assert.match(await metrics.registry.metrics(), /^provisiond_leader\{[^}]*\} 0$/m);
    } finally {
      await e.stop().catch(() => undefined);
      client.close();
    }
  });
});
