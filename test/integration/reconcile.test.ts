/** Initial and repair sync: the connector converges to Okta's state without replaying history. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import pino from "pino";
import { OktaClient } from "../../src/agent/okta-client.js";
import { reconcile } from "../../src/agent/reconcile.js";
import { ScimClient } from "../../src/agent/scim-client.js";
import { Metrics } from "../../src/observability/metrics.js";
import { AGENT_TOKEN, TestNode } from "../support/node.js";
import { APP_ID, diffWithTruth, SIM_TOKEN, SimHandle, type Truth } from "../support/okta-sim.js";
import { PATCH_OP } from "../support/schemas.js";
import { ROOT } from "../support/vectors.js";

const run = promisify(execFile);

describe("reconcile", () => {
  let sim: SimHandle;
  let node: TestNode;
  const ids: string[] = [];
  before(async () => {
    sim = await SimHandle.start();
    // A connector with no agent: it has never seen an event. Its pages hold 50 users: the 120 take three.
    node = await TestNode.start(undefined, { PROVISIOND_SCIM_MAX_RESULTS: "50" });
    for (let i = 0; i < 120; i++) {
      const u = await sim.control("POST", "/users", {
        login: `r${i}@example.com`,
        firstName: `R${i}`,
        lastName: "Sync",
      });
      await sim.control("POST", "/assign", { userId: u.id });
      ids.push(u.id);
    }
    await sim.control("POST", "/unassign", { userId: ids[0] });
    await sim.control("POST", "/lifecycle", { userId: ids[1], action: "suspend" });
    const g = await sim.control("POST", "/groups", { name: "Sync group" });
    for (const id of ids.slice(0, 10))
      await sim.control("POST", "/membership", { groupId: g.id, userId: id, add: true });
    await sim.control("POST", "/push", { groupId: g.id });
  });
  after(async () => {
    await node.stop();
    await sim.stop();
  });

  const truth = async () => (await sim.control("GET", "/truth")) as Truth;
  const once = async () => {
    const metrics = new Metrics("r");
    const logger = pino({ level: "silent" });
    const okta = new OktaClient({ orgUrl: sim.url, token: SIM_TOKEN, metrics, logger });
    const scim = new ScimClient({
      baseUrl: node.base,
      authorization: `Bearer ${AGENT_TOKEN}`,
      logger,
      metrics,
    });
    try {
      return await reconcile({ okta, scim, appId: APP_ID, concurrency: 8, logger });
    } finally {
      await okta.close();
      await scim.close();
    }
  };

  it("fills an empty app store from Okta's current state", async () => {
    const r = await once();
    // Every assigned user (the suspended one inactive); the unassigned one was never in the app.
    assert.equal(r.users.created, 119, JSON.stringify(r));
    assert.equal(r.groups.created, 1);
    assert.deepEqual(await diffWithTruth((p) => node.request("GET", p), await truth()), []);
  });

  it("repairs drift and changes nothing when there is none", async () => {
    const [a, b] = (await node.request("GET", "/Users?count=2&sortBy=userName")).body.Resources;
    await node.request("PATCH", `/Users/${a.id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: "replace", value: { active: false } }],
    });
    await node.request("PATCH", `/Users/${b.id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: "replace", path: "name.familyName", value: "Drifted" }],
    });
    const r = await once();
    assert.equal(r.users.updated, 2, JSON.stringify(r));
    const again = await once();
    assert.deepEqual(Object.keys(again.users), ["unchanged"]);
    assert.deepEqual(again.groups, { unchanged: 1 });
  });

  it("deactivates a user Okta no longer assigns, wherever it falls in the connector's pages", async () => {
    // The last user created: past the connector's first page of 50.
    await sim.control("POST", "/unassign", { userId: ids[119] });
    const r = await once();
    assert.equal(r.users.deactivated, 1, JSON.stringify(r));
    assert.deepEqual(await diffWithTruth((p) => node.request("GET", p), await truth()), []);
  });

  it("runs from the command line and reports what it did", async () => {
    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "reconcile"],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          ...sim.agentEnv(),
          PROVISIOND_AGENT_SCIM_URL: `${node.base}/`,
          PROVISIOND_AGENT_SCIM_TOKEN: AGENT_TOKEN,
          PROVISIOND_LOG_LEVEL: "silent",
          PROVISIOND_DATA_DIR: join(ROOT, ".tmp", "reconcile-cli"),
        },
      },
    );
    assert.equal(JSON.parse(stdout).users.unchanged, 119, stdout);
  });
});
