/**
 * One term, one writer: nodes in this process on a real etcd and MariaDB, their agents fed by the Okta
 * simulator, with a fault-injecting proxy or a test-only store hook where a scenario must hold a write still.
 * Every scenario ends with the history checker.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { etcdClient } from "../../src/cluster/etcd.js";
import { EtcdCluster } from "../support/etcd.js";
import { assertHistory, type Query } from "../support/history.js";
import { MariaDb } from "../support/mariadb.js";
import { metricValue } from "../support/metrics.js";
import { AGENT_TOKEN, TestNode, TOKEN } from "../support/node.js";
import { SimHandle, waitConverged, waitFor } from "../support/okta-sim.js";
import { USER_SCHEMA } from "../support/schemas.js";
import { createsUser, ScimProxy } from "../support/scim-proxy.js";

const TTL = 2000;

describe("one term, one writer (etcd + MariaDB)", () => {
  let etcd: EtcdCluster;
  let maria: MariaDb;
  let sim: SimHandle;
  let nodes: TestNode[] = [];
  let proxy: ScimProxy | undefined;
  let n = 0;
  let cluster = "";
  let db = "";

  before(async () => {
    [etcd, maria] = await Promise.all([EtcdCluster.start(1), MariaDb.start({ fast: true })]);
  });
  after(async () => {
    await etcd.destroy();
    await maria.destroy();
  });
  afterEach(async () => {
    for (const node of nodes) await node.stop();
    nodes = [];
    await proxy?.stop();
    proxy = undefined;
    await sim.stop();
  });

  /** A fresh simulator, database and cluster name for each scenario. */
  async function scenario() {
    n++;
    cluster = `terms${n}`;
    db = `terms${n}`;
    sim = await SimHandle.start();
    return maria.createDatabase(db);
  }
  async function startNode(id: string, storeUrl: string, env: Record<string, string> = {}) {
    const node = await TestNode.start(
      storeUrl,
      sim.agentEnv({
        PROVISIOND_NODE_ID: id,
        PROVISIOND_ETCD_ENDPOINTS: etcd.endpoints.join(","),
        PROVISIOND_CLUSTER: cluster,
        PROVISIOND_LEASE_TTL_MS: String(TTL),
        PROVISIOND_AGENT_BULK_OPERATIONS: "0",
        ...(proxy
          ? { PROVISIOND_AGENT_SCIM_URL: `${proxy.url}/scim/v2`, PROVISIOND_AGENT_SCIM_TOKEN: AGENT_TOKEN }
          : {}),
        ...env,
      }),
    );
    proxy?.setUpstream(node.base);
    nodes.push(node);
    return node;
  }
  const query: Query = async <T>(sql: string, params: unknown[] = []) => {
    const c = await maria.admin();
    try {
      await c.query(`USE \`${db}\``);
      return (await c.query(sql, params))[0] as T[];
    } finally {
      await c.end();
    }
  };
  async function primaryTerm(node: TestNode, above = 0): Promise<number> {
    let term = 0;
    await waitFor(`${above ? "a new" : "a"} term on the node`, async () => {
      const s = await node.status();
      term = s.role === "primary" ? Number(s.term) : 0;
      return term > above && s.agent.running && s.cursor !== null;
    });
    return term;
  }
  /** Revokes a node's lease, as etcd does when it expires: its key goes, and it must campaign again. */
  async function revokeLease(nodeId: string): Promise<void> {
    const client = etcdClient({ endpoints: etcd.endpoints });
    try {
      const res = await client.getAll().prefix(`/provisiond/${cluster}/election/`).exec();
      const kv = res.kvs.find((k) => k.value.toString() === nodeId);
      assert.ok(kv, `${nodeId} has a campaign key`);
      await client.leaseClient.leaseRevoke({ ID: kv.lease });
    } finally {
      client.close();
    }
  }
  async function etcdRevision(): Promise<number> {
    const client = etcdClient({ endpoints: etcd.endpoints });
    try {
      return Number((await client.get("/any").exec()).header.revision);
    } finally {
      client.close();
    }
  }
  const lastPublished = () => sim.sim.org.events[sim.sim.org.events.length - 1]!.published;

  it("a node demoted and re-elected while a write is pending: the old term's agent sends nothing more", async () => {
    const url = await scenario();
    proxy = await ScimProxy.start();
    const node = await startNode("solo", url);
    const t1 = await primaryTerm(node);
    const user = createsUser("pending0@example.com");
    const pending = proxy.hold(user);
    const fresh = proxy.next((a) => user(a) && a.token !== String(t1));
    await sim.control("POST", "/load", { users: 1, prefix: "pending" });
    const held = await pending;
    assert.equal(held.arrival.token, String(t1));
    await revokeLease("solo");
    const t2 = await primaryTerm(node, t1);
    // The new term writes the user itself...
    const mine = await fresh;
    assert.equal(mine.token, String(t2));
    // ...and the old term's write is answered "try again now": an agent of that term still listening would.
    const again = proxy.next((a) => user(a) && a.n > mine.n);
    held.respond(503, "", { "retry-after": "0" });
    const outcome = await Promise.race([
      held.clientGone.then(() => "hung up"),
      again.then((a) => `sent again with token ${a.token}`),
    ]);
    assert.equal(outcome, "hung up", "the old term's agent sent its write again");
    await waitConverged(sim, (p) => node.request("GET", p));
    await assertHistory(query);
  });

  it("an old term's transaction held after its fence check cannot land behind the new primary's decision", async () => {
    const url = await scenario();
    const a = await startNode("a", url);
    const tA = await primaryTerm(a);
    const b = await startNode("b", url);
    const ux = await sim.control("POST", "/users", { login: "stale@example.com", lastName: "L0" });
    await sim.control("POST", "/assign", { userId: ux.id });
    await waitConverged(sim, (p) => a.request("GET", p));

    // A's next write of the old term stops right after its fencing check, until the new primary has decided,
    // or until the transaction's own deadline has passed (then it must roll back).
    let held!: () => void;
    const isHeld = new Promise<void>((r) => {
      held = r;
    });
    let decided!: () => void;
    const bDecided = new Promise<void>((r) => {
      decided = r;
    });
    let finished!: () => void;
    const holdOver = new Promise<void>((r) => {
      finished = r;
    });
    a.node.store.testHooks.afterFenceCheck = async (token, deadline) => {
      if (token !== tA) return;
      a.node.store.testHooks.afterFenceCheck = undefined;
      held();
      await Promise.race([bDecided, sleep(deadline - Date.now() + 1)]);
      finished();
    };
    await sim.control("POST", "/profile", { userId: ux.id, profile: { lastName: "L1" } });
    await isHeld;
    // Okta changes back while A's write of "L1" is in the store's hands; A is then deposed.
    await sim.control("POST", "/profile", { userId: ux.id, profile: { lastName: "L0" } });
    const e2 = lastPublished();
    await revokeLease("a");
    await primaryTerm(b, tA);
    await waitFor("the new primary to decide on every event", async () => {
      const c = (await b.status()).cursor;
      return c?.published !== undefined && c.published >= e2;
    });
    decided();
    await holdOver;
    await waitFor(
      "the old term's transaction to commit or roll back",
      async () =>
        (await query<{ n: number }>("SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX"))[0]!.n === 0,
    );
    const q = encodeURIComponent(`externalId eq "${ux.id}"`);
    const got = (await b.request("GET", `/Users?filter=${q}`)).body.Resources[0];
    assert.equal(
      got.name.familyName,
      "L0",
      "the old term's stale write landed after the new primary decided",
    );
    await waitConverged(sim, (p) => b.request("GET", p));
    await assertHistory(query);
  });

  it("a primary frozen inside a transaction holds no later term back", async () => {
    const url = await scenario();
    const a = await startNode("a", url);
    const tA = await primaryTerm(a);
    const b = await startNode("b", url);
    // A's next write stops after its fence check and never goes on by itself, as in a process stopped (SIGSTOP,
    // a VM pause) with its transaction open: the connection sits idle holding the fence's shared lock.
    let held!: () => void;
    const isHeld = new Promise<void>((r) => {
      held = r;
    });
    let thaw!: () => void;
    const thawed = new Promise<void>((r) => {
      thaw = r;
    });
    a.node.store.testHooks.afterFenceCheck = async (token) => {
      if (token !== tA) return;
      a.node.store.testHooks.afterFenceCheck = undefined;
      held();
      await thawed;
    };
    await sim.control("POST", "/load", { users: 1, prefix: "frozen" });
    await isHeld;
    await revokeLease("a");
    await primaryTerm(b, tA);
    // While A is still frozen, the new term raises the fence and applies everything.
    await sim.control("POST", "/load", { users: 3, prefix: "meanwhile" });
    await waitConverged(sim, (p) => b.request("GET", p));
    thaw();
    await assertHistory(query);
  });

  it("deposed by the store: the primary steps down, campaigns again, and goes on under a newer term", async () => {
    const url = await scenario();
    const node = await startNode("fenced", url);
    const t1 = await primaryTerm(node);
    // As if a newer primary had written meanwhile: the next write of this term is refused. The token is one
    // etcd has already issued (the cursor's first put came after the term began), so no fence is ahead of it.
    const newer = t1 + 1;
    assert.ok(newer <= (await etcdRevision()));
    await query("UPDATE provisiond_fencing SET token = ? WHERE id = 1", [newer]);
    await sim.control("POST", "/load", { users: 1, prefix: "fenced" });
    await waitConverged(sim, (p) => node.request("GET", p));
    const t2 = await primaryTerm(node, t1);
    assert.ok(t2 > newer, `the new term ${t2} is above the stored fence ${newer}`);
    assert.equal(
      metricValue(await node.metrics(), "provisiond_self_demotions_total", { reason: "fenced" }),
      1,
    );
    const deposed = (await node.status()).agent.lastDeposed;
    assert.deepEqual([deposed.term, deposed.storedToken], [t1, newer]);
    assert.equal((await node.status()).agent.fenceAhead, null);
    await assertHistory(query);
  });

  it("an identity provider's credential cannot move the fence: its agent headers are refused, and the agent goes on", async () => {
    const url = await scenario();
    const node = await startNode("forged", url);
    const term = await primaryTerm(node);
    const fence = async () =>
      Number((await query<{ token: number }>("SELECT token FROM provisiond_fencing"))[0]!.token);
    assert.equal(await fence(), term, "the new primary raised the fence at election");
    const forged = { authorization: `Bearer ${TOKEN}`, "x-provisiond-fencing-token": "9007199254740991" };
    const user = { schemas: [USER_SCHEMA], userName: "forger@example.com" };
    // The reproduction: a failing request, a succeeding one, the explicit raise, and a forged replay key.
    const replies = [
      await node.request("DELETE", "/Users/does-not-exist", undefined, forged),
      await node.request("POST", "/Users", user, forged),
      await node.request("POST", "/provisiond/fence", undefined, forged),
      await node.request("POST", "/Users", user, {
        authorization: `Bearer ${TOKEN}`,
        "idempotency-key": "k",
      }),
    ];
    for (const r of replies) {
      assert.equal(r.status, 403, r.text);
      assert.match(r.body.detail, /only with the agent credential \(PROVISIOND_SCIM_AGENT_TOKEN\)/);
    }
    assert.equal(await fence(), term);
    assert.equal(
      (await node.request("GET", '/Users?filter=userName eq "forger@example.com"')).body.totalResults,
      0,
    );
    assert.equal(metricValue(await node.metrics(), "provisiond_scim_agent_header_refusals_total"), 4);
    // Even the agent credential moves the fence only inside a write that succeeds.
    const failed = await node.request("DELETE", "/Users/does-not-exist", undefined, {
      "x-provisiond-fencing-token": String(term + 1000),
    });
    assert.equal(failed.status, 404);
    assert.equal(await fence(), term);
    // The agent was never deposed: the same term goes on applying Okta's changes.
    await sim.control("POST", "/load", { users: 2, prefix: "after-forgery" });
    await waitConverged(sim, (p) => node.request("GET", p));
    const s = await node.status();
    assert.deepEqual([s.role, s.term, s.agent.lastDeposed], ["primary", term, null]);
    await assertHistory(query);
  });

  it("a fence above anything etcd can issue is shown and counted, and processing resumes once it is reset", async () => {
    const url = await scenario();
    const node = await startNode("ahead", url);
    await primaryTerm(node);
    // etcd restored from an old snapshot: its revisions are far below the token the store has seen.
    await query("UPDATE provisiond_fencing SET token = ? WHERE id = 1", [1_000_000_000_000]);
    await sim.control("POST", "/load", { users: 1, prefix: "ahead" });
    await waitFor(
      "the node to report the fence",
      async () => (await node.status()).agent.fenceAhead !== null,
    );
    const ahead = (await node.status()).agent.fenceAhead;
    assert.equal(ahead.storedToken, 1_000_000_000_000);
    assert.ok(ahead.etcdRevision < ahead.storedToken);
    assert.match(ahead.fix, /README/);
    assert.equal(metricValue(await node.metrics(), "provisiond_fence_ahead"), 1);
    // README's fix, 'A fence ahead of etcd'.
    await query("UPDATE provisiond_fencing SET token = 0 WHERE id = 1");
    await waitConverged(sim, (p) => node.request("GET", p));
    await waitFor("the report to clear", async () => (await node.status()).agent.fenceAhead === null);
    assert.equal(metricValue(await node.metrics(), "provisiond_fence_ahead"), 0);
    await assertHistory(query);
  });
});
