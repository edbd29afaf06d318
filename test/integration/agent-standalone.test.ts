/** A standalone node whose agent follows the Okta simulator and converges to its ground truth. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TestNode } from "../support/node.js";
import { diffWithTruth, SimHandle, type Truth, waitConverged, waitFor } from "../support/okta-sim.js";

describe("agent (standalone, SQLite)", () => {
  let sim: SimHandle;
  let node: TestNode;
  before(async () => {
    sim = await SimHandle.start();
    node = await TestNode.start(undefined, sim.agentEnv());
  });
  after(async () => {
    await node.stop();
    await sim.stop();
  });

  it("applies assignments, profile changes, username changes, unassignment, lifecycle and group push", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const u = await sim.control("POST", "/users", {
        login: `person${i}@example.com`,
        firstName: `P${i}`,
        lastName: "Doe",
      });
      await sim.control("POST", "/assign", { userId: u.id });
      ids.push(u.id);
    }
    await sim.control("POST", "/profile", { userId: ids[1], profile: { lastName: "Smith" } });
    await sim.control("POST", "/profile", { userId: ids[2], profile: { login: "renamed2@example.com" } });
    await sim.control("POST", "/unassign", { userId: ids[3] });
    await sim.control("POST", "/lifecycle", { userId: ids[4], action: "suspend" });
    await sim.control("POST", "/lifecycle", { userId: ids[5], action: "deactivate" });
    const g = await sim.control("POST", "/groups", { name: "Engineering" });
    for (const id of ids.slice(0, 6))
      await sim.control("POST", "/membership", { groupId: g.id, userId: id, add: true });
    await sim.control("POST", "/push", { groupId: g.id });
    await sim.control("POST", "/membership", { groupId: g.id, userId: ids[0], add: false });
    await sim.control("POST", "/rename-group", { groupId: g.id, name: "Engineering (EU)" });

    await waitConverged(sim, (p) => node.request("GET", p));
    const truth = (await sim.control("GET", "/truth")) as Truth;
    assert.deepEqual(await diffWithTruth((p) => node.request("GET", p), truth), []);
    assert.equal(truth.users.find((u) => u.externalId === ids[3])!.active, false);

    const status = await node.status();
    assert.equal(status.role, "standalone");
    assert.equal(status.agent.running, true);
    assert.ok(status.cursor.published);
    assert.equal(status.deadLetters.total, 0);
    const metrics = await node.metrics();
    assert.match(
      metrics,
      /provisiond_events_processed_total\{[^}]*type="application.user_membership.add"[^}]*outcome="created"[^}]*\} 30/,
    );
  });

  it("records an event that can never apply as a dead letter, and goes on", async () => {
    // A login longer than the app's userName column (255): the connector refuses it with 400.
    const bad = await sim.control("POST", "/users", { login: `${"x".repeat(300)}@example.com` });
    await sim.control("POST", "/assign", { userId: bad.id });
    const good = await sim.control("POST", "/users", { login: "after.dead@example.com" });
    await sim.control("POST", "/assign", { userId: good.id });
    const status = async () => (await fetch(`${node.admin}/status`)).json();
    await waitFor("the dead letter", async () => (await status()).deadLetters.total === 1);
    const dead = (await status()).deadLetters.items[0];
    assert.equal(dead.subject, bad.id);
    assert.match(dead.reason, /^400: userName is longer than 255/);
    assert.equal(dead.eventType, "application.user_membership.add");
    const q = encodeURIComponent('userName eq "after.dead@example.com"');
    await waitFor(
      "the next event to apply",
      async () => (await node.request("GET", `/Users?filter=${q}`)).body.totalResults === 1,
    );
    const metrics = await node.metrics();
    assert.match(metrics, /provisiond_dead_letters_total\{[^}]*\} 1/);
  });

  it("lag: 0 while caught up, in /status and the gauge alike; a rate-limit wait shows, and the lag counts", async () => {
    const gauge = async () =>
      Number(/^provisiond_event_lag_seconds\{[^}]*\} (\S+)$/m.exec(await node.metrics())?.[1]);
    await waitFor("the agent to catch up", async () => (await node.status()).agent.caughtUp === true);
    // Idle, however old the last event: the old definition (now minus the last applied event) grew here.
    const idle = await node.status();
    assert.equal(idle.eventLagSeconds, 0);
    assert.equal(await gauge(), 0);
    assert.ok(Date.parse(idle.agent.lastPollAt) > Date.parse(idle.cursor.published));
    assert.equal(idle.agent.waitingUntil, null);

    // Two 429s with a reset a second away: the agent waits for each, and says so.
    await sim.control("PUT", "/rate-limits", { storm: 2 });
    await waitFor(
      "a rate-limit wait in /status",
      async () => (await node.status()).agent.waitingUntil !== null,
    );
    const waiting = await node.status();
    assert.equal(waiting.agent.caughtUp, false);
    assert.equal(waiting.agent.waitingFor, "rate-limit (logs)");
    assert.ok(waiting.eventLagSeconds > 0, JSON.stringify(waiting));
    assert.ok((await gauge()) > 0);
    await waitFor("the agent to catch up again", async () => (await node.status()).agent.caughtUp === true);
    assert.equal((await node.status()).eventLagSeconds, 0);
  });

  it("lag: a retried round keeps what the term knew, rather than starting over from the cursor", async () => {
    await waitFor("the agent to catch up", async () => (await node.status()).agent.caughtUp === true);
    // Caught up: everything before the last poll that reached the end is applied, later than the cursor's event.
    const before = (await node.status()).agent.appliedThrough;
    assert.ok(Date.parse(before) > Date.parse((await node.status()).cursor.published));
    await sim.control("PUT", "/faults", {
      faults: [{ pathPrefix: "/api/v1/logs", status: 401, count: 1e6 }],
    });
    try {
      await waitFor(
        "two failed rounds (a retried run)",
        async () => ((await node.status()).agent.trouble?.failures ?? 0) >= 2,
      );
      const failing = await node.status();
      assert.equal(failing.agent.caughtUp, false);
      assert.ok(
        Date.parse(failing.agent.appliedThrough) >= Date.parse(before),
        JSON.stringify(failing.agent),
      );
    } finally {
      await sim.control("PUT", "/faults", { faults: [] });
    }
    await waitFor("the agent to catch up again", async () => (await node.status()).agent.caughtUp === true);
  });
});
