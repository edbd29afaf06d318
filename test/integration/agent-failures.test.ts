/**
 * How the agent meets failure, on a standalone node (SQLite) fed by the Okta simulator, with a fault-injecting
 * proxy between the agent and its connector where a test needs one. Each test starts from a fresh node.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { metricValue } from "../support/metrics.js";
import { AGENT_TOKEN, TestNode, TOKEN } from "../support/node.js";
import { SimHandle, waitConverged, waitFor } from "../support/okta-sim.js";
import { USER_SCHEMA } from "../support/schemas.js";
import { createsUser, ScimProxy } from "../support/scim-proxy.js";

describe("agent failures (standalone)", () => {
  let sim: SimHandle;
  let node: TestNode;
  let proxy: ScimProxy | undefined;
  afterEach(async () => {
    await node?.stop();
    await proxy?.stop();
    proxy = undefined;
    await sim?.stop();
  });

  /** A node whose agent follows a fresh simulator; with `viaProxy`, its SCIM requests go through a proxy. */
  async function start(env: Record<string, string> = {}, viaProxy = false) {
    sim = await SimHandle.start();
    if (viaProxy) proxy = await ScimProxy.start();
    node = await TestNode.start(
      undefined,
      sim.agentEnv({
        ...(proxy
          ? { PROVISIOND_AGENT_SCIM_URL: `${proxy.url}/scim/v2`, PROVISIOND_AGENT_SCIM_TOKEN: AGENT_TOKEN }
          : {}),
        ...env,
      }),
    );
    proxy?.setUpstream(node.base);
  }
  const get = (p: string) => node.request("GET", p);
  /** The node's cursor has moved past every event the simulator has recorded so far. */
  async function roundPassed() {
    const events = sim.sim.org.events;
    const last = events[events.length - 1]!.published;
    await waitFor("the cursor to pass the last event", async () => {
      const c = (await node.status()).cursor;
      return c?.published !== null && c?.published !== undefined && c.published >= last;
    });
  }

  it("a write that fails: the round is retried only once no write of its attempt is still in flight", async () => {
    await start({ PROVISIOND_AGENT_BULK_OPERATIONS: "0" }, true);
    const p = proxy!;
    // One user's write gets a success the agent cannot read; the other's is slow.
    const bad = p.answer(createsUser("retry0@example.com"), {
      status: 200,
      body: "<html>bad gateway page</html>",
      headers: { "content-type": "text/html" },
    });
    const slow = p.hold(createsUser("retry1@example.com"));
    let failedAt = Number.POSITIVE_INFINITY;
    const isLookup = (a: { method: string; path: string; n: number }) =>
      a.method === "GET" && a.path.includes("/Users?filter") && a.n > failedAt;
    // The slow write goes on when the agent says it waits for it, or (without that wait) when the retry begins.
    const release = Promise.race([p.next(isLookup), node.logged(/waiting for the requests in flight/)]);
    await sim.control("POST", "/load", { users: 2, prefix: "retry" });
    const [failed, held] = await Promise.all([bad, slow]);
    failedAt = failed.arrival.n;
    await release;
    await held.forward();
    await waitConverged(sim, get);
    const retry = p.arrivals.find(isLookup);
    assert.ok(retry, "the round was retried");
    assert.ok(
      held.arrival.answeredAt! < retry.n,
      "a write of the first attempt was still in flight when the retry began",
    );
  });

  it("a pushed group gets a member who is assigned to the app after the membership was logged", async () => {
    await start();
    const g = await sim.control("POST", "/groups", { name: "Late joiners" });
    await sim.control("POST", "/push", { groupId: g.id });
    const u = await sim.control("POST", "/users", { login: "late@example.com" });
    // Group-based assignment: Okta logs the group membership first...
    await sim.control("POST", "/membership", { groupId: g.id, userId: u.id, add: true });
    await roundPassed();
    // ...and the app assignment in a later round.
    await sim.control("POST", "/assign", { userId: u.id });
    await roundPassed();
    const group = (await get(`/Groups?filter=${encodeURIComponent(`externalId eq "${g.id}"`)}`)).body
      .Resources[0];
    const user = (await get(`/Users?filter=${encodeURIComponent(`externalId eq "${u.id}"`)}`)).body
      .Resources[0];
    assert.ok(user, "the user was created");
    assert.deepEqual(
      (group.members ?? []).map((m: { value: string }) => m.value),
      [user.id],
      "the user is a member of the pushed group",
    );
    // Leaving the app takes the user out of the pushed group again.
    await sim.control("POST", "/unassign", { userId: u.id });
    await waitConverged(sim, get);
  });

  it("a late joiner still becomes a member when the round fails after their account was created", async () => {
    await start();
    const g = await sim.control("POST", "/groups", { name: "Late and unlucky" });
    await sim.control("POST", "/push", { groupId: g.id });
    const u = await sim.control("POST", "/users", { login: "unlucky@example.com" });
    await sim.control("POST", "/membership", { groupId: g.id, userId: u.id, add: true });
    await roundPassed();
    // The assignment's round creates the account, then fails reading the pushed groups, once: on the retry
    // the account already agrees with Okta, and only the round's events can say the groups must follow.
    await sim.control("PUT", "/faults", {
      faults: [{ pathPrefix: `/api/v1/apps/${"0oatestapp00000000"}/group-push/`, status: 403, count: 1 }],
    });
    await sim.control("POST", "/assign", { userId: u.id });
    await roundPassed();
    assert.ok(
      metricValue(await node.metrics(), "provisiond_agent_round_failures_total", { reason: "okta-403" }) >= 1,
    );
    const group = (await get(`/Groups?filter=${encodeURIComponent(`externalId eq "${g.id}"`)}`)).body
      .Resources[0];
    const user = (await get(`/Users?filter=${encodeURIComponent(`externalId eq "${u.id}"`)}`)).body
      .Resources[0];
    assert.deepEqual(
      (group.members ?? []).map((m: { value: string }) => m.value),
      [user.id],
      "the user is a member of the pushed group",
    );
  });

  it("a connector that refuses long filters: lookups are split down to one user, and the round applies", async () => {
    // 64 characters hold one `externalId eq "…"` clause, not two.
    await start({ PROVISIOND_SCIM_MAX_FILTER_LENGTH: "64", PROVISIOND_AGENT_BULK_OPERATIONS: "0" });
    await sim.control("POST", "/load", { users: 5, prefix: "short-filter" });
    await waitConverged(sim, get);
    assert.equal((await node.status()).deadLetters.total, 0);
  });

  it("a connector that refuses the agent's credential is a failed round in /status, never a dead letter", async () => {
    // The agent is sent to a connector with an identity provider's token instead of the agent credential.
    await start({ PROVISIOND_AGENT_SCIM_TOKEN: TOKEN, PROVISIOND_AGENT_BULK_OPERATIONS: "0" }, true);
    await sim.control("POST", "/load", { users: 2, prefix: "wrong-credential" });
    await waitFor(
      "the agent to report the refusal",
      async () => (await node.status()).agent.trouble !== null,
    );
    const s = await node.status();
    assert.equal(s.agent.trouble.reason, "scim-403");
    assert.match(s.agent.trouble.message, /only with the agent credential/);
    assert.equal(s.deadLetters.total, 0);
    const first = sim.sim.org.events[0]!.published;
    assert.ok(!(s.cursor?.published >= first), "the cursor stays before the events it could not apply");
    assert.equal((await get("/Users")).body.totalResults, 0);
  });

  it("Okta refusing the agent (403) is shown in /status and a metric, and processing resumes when it stops", async () => {
    await start();
    await sim.control("PUT", "/faults", {
      faults: [{ pathPrefix: `/api/v1/apps/${"0oatestapp00000000"}/users/`, status: 403, count: 1_000_000 }],
    });
    await sim.control("POST", "/load", { users: 1, prefix: "forbidden" });
    await waitFor(
      "the agent to report the refusal",
      async () => (await node.status()).agent.trouble !== null,
    );
    const trouble = (await node.status()).agent.trouble;
    assert.equal(trouble.reason, "okta-403");
    assert.match(trouble.message, /E0000006/);
    assert.ok(
      metricValue(await node.metrics(), "provisiond_agent_round_failures_total", { reason: "okta-403" }) >= 1,
    );
    await sim.control("PUT", "/faults", { faults: [] });
    await waitConverged(sim, get);
    await waitFor("the trouble to clear", async () => (await node.status()).agent.trouble === null);
  });

  it("a pushed group Okta no longer has (404) becomes a dead letter, and the stream goes on", async () => {
    await start();
    const g = await sim.control("POST", "/groups", { name: "Vanishing" });
    await sim.control("PUT", "/faults", {
      faults: [{ pathPrefix: `/api/v1/groups/${g.id}`, status: 404, count: 1_000_000 }],
    });
    await sim.control("POST", "/push", { groupId: g.id });
    await sim.control("POST", "/load", { users: 1, prefix: "after-vanishing" });
    await waitFor("the dead letter", async () => (await node.status()).deadLetters.total >= 1);
    const dead = (await node.status()).deadLetters.items[0];
    assert.equal(dead.subject, g.id);
    assert.match(dead.reason, /^Okta: 404/);
    const q = encodeURIComponent('userName eq "after-vanishing0@example.com"');
    await waitFor(
      "the next event to apply",
      async () => (await get(`/Users?filter=${q}`)).body.totalResults === 1,
    );
  });

  it("a proxy's 502 page is a retry of that write, not a failed round", async () => {
    await start({ PROVISIOND_AGENT_BULK_OPERATIONS: "0" }, true);
    const page = proxy!.answer(createsUser("gateway0@example.com"), {
      status: 502,
      body: "<html><body>502 Bad Gateway</body></html>",
      headers: { "content-type": "text/html" },
    });
    await sim.control("POST", "/load", { users: 1, prefix: "gateway" });
    await page;
    await waitConverged(sim, get);
    const metrics = await node.metrics();
    assert.equal(
      metricValue(metrics, "provisiond_agent_retries_total", { target: "scim", reason: "502" }),
      1,
    );
    assert.equal(metricValue(metrics, "provisiond_agent_round_failures_total"), 0);
  });

  it("a 409 whose text mentions a fencing token is a conflict, not a deposition", async () => {
    await start();
    // Another client already holds the userName; its conflict detail repeats it.
    const name = "fencing token holder@example.com";
    const plain = await node.request(
      "POST",
      "/Users",
      { schemas: [USER_SCHEMA], userName: name },
      {
        authorization: `Bearer ${TOKEN}`,
      },
    );
    assert.equal(plain.status, 201);
    const u = await sim.control("POST", "/users", { login: name });
    await sim.control("POST", "/assign", { userId: u.id });
    await sim.control("POST", "/load", { users: 1, prefix: "after-clash" });
    await waitFor("the dead letter", async () => (await node.status()).deadLetters.total === 1);
    assert.match((await node.status()).deadLetters.items[0].reason, /^409: userName 'fencing token holder/);
    const q = encodeURIComponent('userName eq "after-clash0@example.com"');
    await waitFor(
      "the next event to apply",
      async () => (await get(`/Users?filter=${q}`)).body.totalResults === 1,
    );
    assert.equal((await node.status()).agent.running, true);
  });
});
