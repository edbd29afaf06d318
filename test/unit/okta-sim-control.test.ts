/**
 * The simulator's control API (/sim): each route's body is checked (400 naming the field, nothing written),
 * GET /sim, --help and README list the same routes, and GET /sim/load follows a load to its end.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createOktaSim, SIM_ROUTES, simRoutes, simUsage } from "../../src/okta-sim/server.js";
import { SimError } from "../../src/okta-sim/state.js";

const TOKEN = "sim-token";
const APP = "0oaCONTROL";

// Every assert.ok carries a message: without one, a failing assert.ok reads this file's source to quote the
// call, which under tsx spun for minutes.

/** A simulator on a free port, and a control call to it; `raw` is sent as is (with `type`), anything else as JSON. */
function harness() {
  const sim = createOktaSim({ token: TOKEN, appId: APP });
  const { org } = sim;
  const server = sim.app.listen(0, "127.0.0.1");
  let base = "";
  before(async () => {
    if (!server.listening) await new Promise((r) => server.once("listening", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    sim.stop();
    server.close();
  });

  async function call(
    method: string,
    path: string,
    body?: unknown,
    opts: { raw?: string; type?: string; token?: string } = {},
  ) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `SSWS ${opts.token ?? TOKEN}`,
        "content-type": opts.type ?? "application/json",
      },
      ...(opts.raw !== undefined
        ? { body: opts.raw }
        : body !== undefined
          ? { body: JSON.stringify(body) }
          : {}),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    // biome-ignore lint/suspicious/noExplicitAny: the control API answers arbitrary JSON
    return { status: res.status, headers: res.headers, body: json as any };
  }

  return { sim, org, call, base: () => base };
}

describe("okta-sim control API", () => {
  const { sim, org, call, base: baseUrl } = harness();
  /** What a refused call must leave alone. */
  const snapshot = () => ({
    users: org.users.size,
    appUsers: org.appUsers.size,
    groups: org.groups.size,
    events: org.events.length,
  });

  /** A call that must be answered 400 naming `field`, with nothing written. */
  async function refused(
    path: string,
    body: unknown,
    field: string,
    opts: { raw?: string; type?: string } = {},
  ) {
    const before = snapshot();
    const r = await call("POST", path, body, opts);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body ?? opts.raw)}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body, "object", `a JSON error, got ${JSON.stringify(r.body)}`);
    assert.equal(r.body.field, field, JSON.stringify(r.body));
    assert.match(r.body.error, new RegExp(`^${field.replace(/[[\].]/g, "\\$&")}: `));
    assert.deepEqual(snapshot(), before, "a refused call changed the org");
    return r.body as { error: string; field: string };
  }

  it("a user needs a login: {} and an empty or non-string login create no user", async () => {
    await refused("/sim/users", {}, "login");
    await refused("/sim/users", { login: "" }, "login");
    await refused("/sim/users", { login: "   " }, "login");
    await refused("/sim/users", { login: 42 }, "login");
    await refused("/sim/users", { email: "x@example.com", firstName: "X" }, "login");
  });

  it("a user's other fields are checked: email an address, names strings, no unknown fields", async () => {
    await refused("/sim/users", { login: "a@example.com", email: "not an address" }, "email");
    await refused("/sim/users", { login: "a@example.com", firstName: "" }, "firstName");
    await refused("/sim/users", { login: "a@example.com", lastName: null }, "lastName");
    const e = await refused("/sim/users", { login: "a@example.com", nickname: "A" }, "nickname");
    assert.match(e.error, /unknown field.*login, email, firstName, lastName/);
  });

  it("the bodies existing callers send still work", async () => {
    const before = org.users.size;
    const a = await call("POST", "/sim/users", { login: "chaos1@example.com", lastName: "L0" });
    assert.equal(a.status, 200);
    assert.deepEqual(a.body.profile, {
      login: "chaos1@example.com",
      email: "chaos1@example.com",
      firstName: "First",
      lastName: "L0",
    });
    const b = await call("POST", "/sim/users", { login: "fencing token holder@example.com" });
    assert.equal(b.status, 200);
    assert.equal(org.users.size, before + 2);
    assert.equal((await call("POST", "/sim/assign", { userId: a.body.id })).status, 200);
    assert.equal(
      (await call("POST", "/sim/profile", { userId: a.body.id, profile: { lastName: "L1" } })).status,
      200,
    );
    assert.equal(org.users.get(a.body.id)!.profile.lastName, "L1");
    const g = await call("POST", "/sim/groups", { name: "Engineering" });
    assert.equal(g.status, 200);
    assert.equal(
      (await call("POST", "/sim/membership", { groupId: g.body.id, userId: a.body.id, add: true })).status,
      200,
    );
    assert.equal((await call("POST", "/sim/push", { groupId: g.body.id })).status, 200);
    assert.equal((await call("POST", "/sim/rename-group", { groupId: g.body.id, name: "Eng" })).status, 200);
    assert.equal(
      (await call("POST", "/sim/lifecycle", { userId: b.body.id, action: "suspend" })).status,
      200,
    );
    assert.equal(org.users.get(b.body.id)!.status, "SUSPENDED");
  });

  it("a lifecycle action it does not know is refused, listing the known ones, and the user stays deactivated", async () => {
    const u = org.createUser({ login: "gone@example.com" });
    org.lifecycle(u.id, "deactivate");
    for (const action of ["activate", "Reactivate", "", 1]) {
      const e = await refused("/sim/lifecycle", { userId: u.id, action }, "action");
      assert.match(e.error, /deactivate, reactivate, suspend, unsuspend/);
      assert.equal(org.users.get(u.id)!.status, "DEPROVISIONED");
    }
    await refused("/sim/lifecycle", { userId: u.id }, "action");
    await refused("/sim/lifecycle", { action: "reactivate" }, "userId");
    assert.equal(org.users.get(u.id)!.status, "DEPROVISIONED");
  });

  it("the org itself refuses a lifecycle action it does not know (it used to reactivate)", () => {
    const u = org.createUser({ login: "direct@example.com" });
    org.lifecycle(u.id, "deactivate");
    const events = org.events.length;
    assert.throws(
      () => org.lifecycle(u.id, "delete" as "deactivate"),
      (err: unknown) => err instanceof SimError && err.status === 400,
    );
    assert.throws(() => org.lifecycle(u.id, "toString" as "deactivate"), SimError);
    assert.equal(org.users.get(u.id)!.status, "DEPROVISIONED");
    assert.equal(org.events.length, events);
  });

  it("a group needs a name", async () => {
    await refused("/sim/groups", {}, "name");
    await refused("/sim/groups", { name: "" }, "name");
    await refused("/sim/groups", { name: ["Eng"] }, "name");
    const g = org.createGroup("Keep");
    await refused("/sim/rename-group", { groupId: g.id }, "name");
    assert.equal(org.groups.get(g.id)!.profile.name, "Keep");
  });

  it("a body that is not a JSON object is a 400 naming the body, never a 500", async () => {
    await refused("/sim/users", undefined, "body", { raw: '{"login":' });
    await refused("/sim/users", undefined, "body", { raw: "not json" });
    await refused("/sim/users", undefined, "body", { raw: '"a@example.com"' });
    await refused("/sim/users", undefined, "body", { raw: "null" });
    await refused("/sim/users", [{ login: "a@example.com" }], "body");
    await refused("/sim/groups", undefined, "body", {
      raw: "name=Eng",
      type: "application/x-www-form-urlencoded",
    });
    await refused("/sim/groups", undefined, "body", { raw: '{"name":"Eng"}', type: "text/plain" });
    // A request with no body at all reads as {}: still a missing field, not a crash.
    await refused("/sim/groups", undefined, "name");
  });

  it("a malformed body without the token is still a 401", async () => {
    const r = await call("POST", "/sim/users", undefined, { raw: "{", token: "wrong" });
    assert.equal(r.status, 401);
    assert.equal(r.body.errorCode, "E0000011");
  });

  it("nested fields are checked and named with their path", async () => {
    const u = org.createUser({ login: "nested@example.com", lastName: "Same" });
    await refused("/sim/profile", { userId: u.id, profile: {} }, "profile");
    await refused("/sim/profile", { userId: u.id, profile: { nick: "x" } }, "profile.nick");
    await refused("/sim/profile", { userId: u.id, profile: { email: "nope" } }, "profile.email");
    await refused("/sim/profile", { userId: u.id, profile: "Smith" }, "profile");
    assert.equal(org.users.get(u.id)!.profile.lastName, "Same");
    await refused("/sim/membership", { groupId: "00g", userId: u.id, add: "yes" }, "add");
    await refused("/sim/load", {}, "users");
    await refused("/sim/load", { users: 0 }, "users");
    await refused("/sim/load", { users: "10" }, "users");
    await refused("/sim/load", { users: 2, perSecond: -1 }, "perSecond");
    await refused("/sim/load", { users: 2, usrs: 3 }, "usrs");
  });

  it("PUT /sim/faults and /sim/rate-limits check theirs, and a refused one keeps the previous setting", async () => {
    const u = org.createUser({ login: "faulty@example.com" });
    const path = `/api/v1/users/${u.id}`;
    const okta = () => fetch(`${baseUrl()}${path}`, { headers: { authorization: `SSWS ${TOKEN}` } });
    const put = (p: string, body: unknown) => call("PUT", p, body);
    assert.equal(
      (await put("/sim/faults", { faults: [{ pathPrefix: path, status: 404, count: 1 }] })).status,
      200,
    );
    for (const [body, field] of [
      [{}, "faults"],
      [{ faults: {} }, "faults"],
      [{ faults: [{ pathPrefix: "/v1/users", status: 404 }] }, "faults[0].pathPrefix"],
      [{ faults: [{ pathPrefix: path, status: "404" }] }, "faults[0].status"],
      [{ faults: [{ pathPrefix: path, status: 200 }] }, "faults[0].status"],
      [{ faults: [{ pathPrefix: path, status: 500, count: 0 }] }, "faults[0].count"],
    ] as const) {
      const r = await put("/sim/faults", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.field, field);
    }
    assert.equal((await okta()).status, 404, "the fault set before the refused calls still answers");
    assert.equal((await okta()).status, 200);
    const limits = structuredClone(sim.limiter.config);
    for (const [body, field] of [
      [{ enabled: "no" }, "enabled"],
      [{ perMinute: { logs: 0 } }, "perMinute.logs"],
      [{ perMinute: { log: 10 } }, "perMinute.log"],
      [{ storm: "5" }, "storm"],
    ] as const) {
      const r = await put("/sim/rate-limits", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.field, field);
    }
    assert.deepEqual(sim.limiter.config, limits);
  });

  it("GET /sim lists every route, and every route it lists is served", async () => {
    const r = await call("GET", "/sim");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.routes, simRoutes());
    const listed = (r.body.routes as { method: string; path: string; body: string }[]).map(
      (x) => `${x.method} ${x.path} ${x.body}`,
    );
    for (const want of [
      "POST /sim/users {login, email?: email, firstName?, lastName?}",
      "POST /sim/lifecycle {userId, action: deactivate|reactivate|suspend|unsuspend}",
      "POST /sim/groups {name}",
      "POST /sim/load {users: int, updates?: int, perSecond?: int, prefix?}",
      "GET /sim/load -",
    ])
      assert.ok(listed.includes(want), `${want} not in ${listed.join("; ")}`);
    for (const route of simRoutes()) {
      // With a body the route takes none of, it answers 400 (or 200 for a GET): it exists.
      const res = await call(route.method, route.path, route.body === "-" ? undefined : { "?": 1 });
      assert.equal(res.status, route.body === "-" ? 200 : 400, `${route.method} ${route.path}`);
    }
  });

  it("an unknown control route is a JSON 404, a known one with another method a 405", async () => {
    const a = await call("POST", "/sim/nope", {});
    assert.equal(a.status, 404);
    assert.match(a.body.error, /GET \/sim lists them/);
    const b = await call("DELETE", "/sim/load");
    assert.equal(b.status, 405);
    assert.equal(b.headers.get("allow"), "POST, GET");
  });

  it("README's table and okta-sim --help list the routes GET /sim does", async () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## The Okta simulator"));
    const rows = section
      .slice(0, section.indexOf("\n## ", 5))
      .split("\n")
      .filter((l) => /^\| (GET|POST|PUT) +\|/.test(l))
      .map((l) =>
        l
          .slice(1, -1)
          .split(/(?<!\\)\|/)
          .map((c) =>
            c
              .trim()
              .replace(/\\\|/g, "|")
              .replace(/^`(.*)`$/, "$1"),
          ),
      );
    assert.deepEqual(
      rows,
      simRoutes().map((r) => [r.method, r.path, r.body, r.does]),
    );
    const usage = simUsage();
    for (const r of simRoutes()) assert.ok(usage.includes(`${r.path.padEnd(17)} ${r.body}`), r.path);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "okta-sim", "--help"],
      { cwd: new URL("../..", import.meta.url) },
    );
    assert.ok(stdout.startsWith("usage: provisiond okta-sim"), stdout.slice(0, 200));
    assert.ok(stdout.includes(usage), "--help prints simUsage()");
    assert.equal(SIM_ROUTES.length, simRoutes().length);
  });
});

describe("okta-sim GET /sim/load", () => {
  const { sim, org, call } = harness();

  it("GET /sim/load answers the loads' progress: none, running, finished", async () => {
    const idle = await call("GET", "/sim/load");
    assert.equal(idle.status, 200);
    assert.deepEqual(idle.body, {
      running: false,
      requested: 0,
      done: 0,
      startedAt: null,
      finishedAt: null,
      loads: [],
    });
    const users = org.users.size;
    // 40 operations, one each 20 ms tick: under a second, long enough to be seen running.
    const started = await call("POST", "/sim/load", {
      users: 30,
      updates: 10,
      perSecond: 50,
      prefix: "prog",
    });
    assert.equal(started.status, 200);
    assert.equal(started.body.id, 1);
    assert.equal(started.body.running, true);
    assert.equal(started.body.requested, 40);
    assert.equal(started.body.finishedAt, null);
    let during = await call("GET", "/sim/load");
    for (let i = 0; i < 400 && during.body.done === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
      during = await call("GET", "/sim/load");
    }
    assert.ok(during.body.done > 0, "the load never started");
    if (during.body.done < 40) {
      assert.equal(during.body.running, true, JSON.stringify(during.body));
      assert.equal(during.body.finishedAt, null);
      assert.equal(org.users.size, users + Math.min(30, during.body.done));
    }
    assert.equal(during.body.requested, 40);
    assert.equal(during.body.startedAt, started.body.startedAt);
    let end = during;
    for (let i = 0; i < 400 && end.body.running; i++) {
      await new Promise((r) => setTimeout(r, 25));
      end = await call("GET", "/sim/load");
    }
    assert.equal(end.body.running, false);
    assert.equal(end.body.done, 40);
    assert.equal(org.users.size, users + 30);
    assert.ok(end.body.finishedAt >= end.body.startedAt, JSON.stringify(end.body));
    assert.equal(end.body.loads.length, 1);
    assert.equal(end.body.loads[0].stopped, false);
    // Without perSecond the load is over when the POST answers.
    const sync = await call("POST", "/sim/load", { users: 3, prefix: "sync" });
    assert.equal(sync.body.running, false);
    assert.equal(sync.body.done, 3);
    assert.ok(sync.body.finishedAt, JSON.stringify(sync.body));
    const both = await call("GET", "/sim/load");
    assert.equal(both.body.requested, 43);
    assert.equal(both.body.done, 43);
    assert.equal(both.body.finishedAt, sync.body.finishedAt);
    assert.equal(both.body.startedAt, started.body.startedAt);
  });

  it("a load stop() ends is reported stopped, not running", async () => {
    await call("POST", "/sim/load", { users: 1000, perSecond: 50, prefix: "stopped" });
    sim.stop();
    const r = await call("GET", "/sim/load");
    const last = r.body.loads.at(-1);
    assert.equal(r.body.running, false);
    assert.equal(last.running, false);
    assert.equal(last.stopped, true);
    assert.equal(last.finishedAt, null);
    assert.ok(last.done < 1000, JSON.stringify(last));
    assert.equal(r.body.finishedAt, null);
  });
});
