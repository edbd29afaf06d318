/** Searches, sorting, password sync, a custom extension mapped to columns, and Entra's dialect over HTTP. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { verifyPassword } from "../../src/scim/password.js";
import { TestNode } from "../support/node.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

const SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const CUSTOM = "urn:example:params:scim:schemas:extension:acme:2.0:User";
const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

describe("searching and sorting", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start();
    for (const [u, dn] of [
      ["carol@x.com", "Carol"],
      ["alice@x.com", "alice"],
      ["bob@x.com", "Bob"],
      ["dave@x.com", undefined],
    ]) {
      assert.equal(
        (await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: u, displayName: dn }))
          .status,
        201,
      );
    }
    await node.request("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: "Admins" });
  });
  after(async () => node.stop());

  it("POST /Users/.search takes a SearchRequest", async () => {
    const r = await node.request("POST", "/Users/.search", {
      schemas: [SEARCH],
      filter: 'userName sw "b" or userName sw "c"',
      attributes: ["userName"],
      sortBy: "userName",
      startIndex: 1,
      count: 10,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.Resources.map((x: { userName: string }) => x.userName),
      ["bob@x.com", "carol@x.com"],
    );
    assert.equal(r.body.Resources[0].displayName, undefined);
  });

  it("POST /.search pages across users and then groups", async () => {
    const all = await node.request("POST", "/.search", { schemas: [SEARCH], count: 10 });
    assert.equal(all.body.totalResults, 5);
    const tail = await node.request("POST", "/.search", { schemas: [SEARCH], startIndex: 4, count: 10 });
    assert.deepEqual(
      tail.body.Resources.map((x: { meta: { resourceType: string } }) => x.meta.resourceType),
      ["User", "Group"],
    );
  });

  it("sorts case-insensitively by displayName, unassigned last, both directions", async () => {
    const asc = await node.request("GET", "/Users?sortBy=displayName&attributes=userName");
    assert.deepEqual(
      asc.body.Resources.map((x: { userName: string }) => x.userName),
      ["alice@x.com", "bob@x.com", "carol@x.com", "dave@x.com"],
    );
    const desc = await node.request(
      "GET",
      "/Users?sortBy=displayName&sortOrder=descending&attributes=userName",
    );
    assert.deepEqual(
      desc.body.Resources.map((x: { userName: string }) => x.userName),
      ["carol@x.com", "bob@x.com", "alice@x.com", "dave@x.com"],
    );
  });

  it("answers a create that asks for few attributes with its Location all the same, also when replayed", async () => {
    for (const [path, body] of [
      ["/Users?attributes=userName", { schemas: [USER_SCHEMA], userName: "few@example.com" }],
      ["/Groups?attributes=displayName", { schemas: [GROUP_SCHEMA], displayName: "Few" }],
    ] as const) {
      const first = await node.request("POST", path, body, { "idempotency-key": `few-${path}` });
      assert.equal(first.status, 201, first.text);
      assert.equal(first.body.meta, undefined);
      assert.match(first.headers.get("location") ?? "", new RegExp(`/${first.body.id}$`));
      const replay = await node.request("POST", path, body, { "idempotency-key": `few-${path}` });
      assert.equal(replay.status, 201);
      assert.equal(replay.headers.get("location"), first.headers.get("location"));
    }
  });

  it("serves the discovery endpoints", async () => {
    const spc = await node.request("GET", "/ServiceProviderConfig");
    assert.equal(spc.body.patch.supported, true);
    assert.equal(spc.body.filter.maxResults, 1000);
    assert.equal(spc.body.etag.supported, true);
    const types = await node.request("GET", "/ResourceTypes");
    assert.deepEqual(
      types.body.Resources.map((t: { endpoint: string }) => t.endpoint),
      ["/Users", "/Groups"],
    );
    const schema = await node.request("GET", `/Schemas/${ENTERPRISE}`);
    assert.equal(schema.status, 200);
    assert.ok(schema.body.attributes.some((a: { name: string }) => a.name === "manager"));
  });
});

describe("password sync and a custom extension", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start(undefined, {
      PROVISIOND_PASSWORD_SYNC: "true",
      PROVISIOND_CUSTOM_SCHEMA: JSON.stringify({
        urn: CUSTOM,
        attributes: [
          { name: "costCode", type: "string", column: "cost_code" },
          { name: "clearance", type: "integer", column: "clearance" },
          { name: "badges", type: "string", column: "badges", multiValued: true },
        ],
      }),
    });
  });
  after(async () => node.stop());

  it("stores only an scrypt hash of the password, and never returns it", async () => {
    const r = await node.request("POST", "/Users", {
      schemas: [USER_SCHEMA],
      userName: "pw@x.com",
      password: "S3cret-Passw0rd!",
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.password, undefined);
    const [row] = await node.node.store.db.transaction((q) =>
      q.all<{ password_hash: string; doc: string }>("SELECT password_hash, doc FROM scim_users"),
    );
    assert.match(row!.password_hash, /^scrypt\$/);
    assert.ok(!row!.doc.includes("S3cret"));
    assert.equal(await verifyPassword("S3cret-Passw0rd!", row!.password_hash), true);
    assert.equal(await verifyPassword("wrong", row!.password_hash), false);
    const spc = await node.request("GET", "/ServiceProviderConfig");
    assert.equal(spc.body.changePassword.supported, true);
  });

  it("maps the custom attributes to columns, lists the schema, and filters on them", async () => {
    const r = await node.request("POST", "/Users", {
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:User", CUSTOM],
      userName: "custom@x.com",
      [CUSTOM]: { costCode: "CC-7", clearance: 3, badges: ["red", "blue"] },
    });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body[CUSTOM], { costCode: "CC-7", clearance: 3, badges: ["red", "blue"] });
    assert.ok(r.body.schemas.includes(CUSTOM));
    const [row] = await node.node.store.db.transaction((q) =>
      q.all<{ cost_code: string; clearance: number; badges: string }>(
        "SELECT cost_code, clearance, badges FROM scim_users WHERE user_name = ?",
        ["custom@x.com"],
      ),
    );
    assert.deepEqual({ ...row }, { cost_code: "CC-7", clearance: 3, badges: '["red","blue"]' });
    const hit = await node.request(
      "GET",
      `/Users?filter=${encodeURIComponent(`${CUSTOM}:clearance ge 2 and ${CUSTOM}:badges eq "BLUE"`)}`,
    );
    assert.equal(hit.body.totalResults, 1);
    const schemas = await node.request("GET", "/Schemas");
    assert.ok(schemas.body.Resources.some((s: { id: string }) => s.id === CUSTOM));
    const bad = await node.request("POST", "/Users", {
      schemas: [USER_SCHEMA],
      userName: "c2@x.com",
      [CUSTOM]: { clearance: "high" },
    });
    assert.equal(bad.status, 400);
  });
});

describe("Entra's provisioning flow", () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.start();
  });
  after(async () => node.stop());

  it("creates with string booleans, patches with capitalised ops, and removes members by value array", async () => {
    const headers = { "user-agent": "Azure AD SCIM client" };
    const u = await node.request(
      "POST",
      "/Users",
      {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        userName: "entra@contoso.com",
        active: "True",
        externalId: "e-1",
        emails: [{ type: "work", value: "entra@contoso.com", primary: true }],
        [ENTERPRISE]: { department: "Sales" },
      },
      headers,
    );
    assert.equal(u.status, 201);
    assert.equal(u.body.active, true);
    const p = await node.request(
      "PATCH",
      `/Users/${u.body.id}`,
      {
        schemas: [PATCH_OP],
        Operations: [
          { op: "Replace", path: "active", value: "False" },
          { op: "Add", path: 'phoneNumbers[type eq "mobile"].value', value: "+1 555 0100" },
          { op: "Replace", path: `${ENTERPRISE}:department`, value: "Marketing" },
          { op: "Add", path: `${ENTERPRISE}:manager`, value: "boss-1" },
        ],
      },
      headers,
    );
    assert.equal(p.status, 200, p.text);
    assert.equal(p.body.active, false);
    assert.deepEqual(p.body.phoneNumbers, [{ type: "mobile", value: "+1 555 0100" }]);
    assert.deepEqual(p.body[ENTERPRISE], { department: "Marketing", manager: { value: "boss-1" } });

    const g = await node.request(
      "POST",
      "/Groups",
      { schemas: [GROUP_SCHEMA], displayName: "Sales", members: [{ value: u.body.id }] },
      headers,
    );
    const rm = await node.request(
      "PATCH",
      `/Groups/${g.body.id}`,
      {
        schemas: [PATCH_OP],
        Operations: [{ op: "Remove", path: "members", value: [{ value: u.body.id }] }],
      },
      headers,
    );
    assert.equal(rm.status, 204);
    assert.equal((await node.request("GET", `/Groups/${g.body.id}`)).body.members, undefined);
    const byExt = await node.request("GET", `/Users?filter=${encodeURIComponent('externalId eq "e-1"')}`);
    assert.equal(byExt.body.totalResults, 1);
  });
});
