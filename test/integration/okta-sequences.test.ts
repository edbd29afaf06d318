/**
 * The request sequences Okta sends (see the connector issue), request by request, against SQLite and against a
 * real MariaDB server.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MariaDb } from "../support/mariadb.js";
import { TestNode } from "../support/node.js";
import { PATCH_OP } from "../support/schemas.js";

const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PLACEHOLDER_PASSWORD = "gX4zR9!placeholder-Okta";

function oktaUser(login: string, extra: Record<string, unknown> = {}) {
  return {
    schemas: [USER_SCHEMA],
    userName: login,
    name: { givenName: "Ada", familyName: "Lovelace" },
    emails: [{ primary: true, value: login, type: "work" }],
    displayName: "Ada Lovelace",
    locale: "en-US",
    externalId: `00u${login.length}abc`,
    groups: [],
    password: PLACEHOLDER_PASSWORD,
    active: true,
    ...extra,
  };
}

const eq = (attr: string, v: string) => encodeURIComponent(`${attr} eq "${v}"`);

function oktaSuite(label: string, storeUrl: () => Promise<string | undefined>, cleanup: () => Promise<void>) {
  describe(`Okta sequences (${label})`, () => {
    let node: TestNode;
    before(async () => {
      node = await TestNode.start(await storeUrl());
    });
    after(async () => {
      await node.stop();
      await cleanup();
    });

    it("assigns a user: lookup finds nothing, POST creates, a second POST is 409, lookup then links", async () => {
      const login = "ada.lovelace@example.com";
      const miss = await node.request("GET", `/Users?filter=${eq("userName", login)}&startIndex=1&count=100`);
      assert.equal(miss.status, 200);
      assert.deepEqual(miss.body, {
        schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        totalResults: 0,
        itemsPerPage: 0,
        startIndex: 1,
        Resources: [],
      });
      const created = await node.request("POST", "/Users", oktaUser(login));
      assert.equal(created.status, 201);
      assert.match(created.headers.get("content-type") ?? "", /application\/scim\+json/);
      assert.equal(created.body.userName, login);
      assert.equal(created.body.active, true);
      assert.deepEqual(created.body.emails, [{ primary: true, value: login, type: "work" }]);
      assert.equal(created.body.password, undefined, "the password is never returned");
      assert.equal(created.body.meta.resourceType, "User");
      assert.equal(created.headers.get("location"), created.body.meta.location);
      assert.equal(created.headers.get("etag"), created.body.meta.version);

      const dup = await node.request("POST", "/Users", oktaUser(login.toUpperCase()));
      assert.equal(dup.status, 409);
      assert.equal(dup.body.scimType, "uniqueness");
      assert.equal(dup.body.status, "409");

      const hit = await node.request(
        "GET",
        `/Users?filter=${eq("userName", "ADA.lovelace@EXAMPLE.com")}&startIndex=1&count=100`,
      );
      assert.equal(hit.body.totalResults, 1);
      assert.equal(hit.body.Resources[0].id, created.body.id);
    });

    it("never stores Okta's placeholder password", async () => {
      const rows = await node.node.store.db.transaction((q) =>
        q.all<Record<string, unknown>>("SELECT * FROM scim_users"),
      );
      const audit = await node.node.store.db.transaction((q) =>
        q.all<Record<string, unknown>>("SELECT * FROM scim_audit"),
      );
      assert.ok(rows.length > 0);
      assert.ok(!JSON.stringify([rows, audit]).includes(PLACEHOLDER_PASSWORD));
      assert.ok(rows.every((r) => r.password_hash === null));
    });

    it("updates a profile: GET, then PUT with the full body Okta sends", async () => {
      const login = "grace.hopper@example.com";
      const created = (await node.request("POST", "/Users", oktaUser(login))).body;
      const got = await node.request("GET", `/Users/${created.id}`);
      assert.equal(got.status, 200);
      const put = await node.request("PUT", `/Users/${created.id}`, {
        ...oktaUser(login),
        id: created.id,
        name: { givenName: "Grace", familyName: "Hopper" },
        displayName: "Grace Hopper",
        groups: [],
        meta: { resourceType: "User" },
      });
      assert.equal(put.status, 200);
      assert.equal(put.body.id, created.id);
      assert.deepEqual(put.body.name, { givenName: "Grace", familyName: "Hopper" });
      assert.equal(put.body.meta.version, 'W/"2"');
    });

    it("deactivates with PATCH and reactivates with PUT", async () => {
      const created = (await node.request("POST", "/Users", oktaUser("alan.turing@example.com"))).body;
      const off = await node.request("PATCH", `/Users/${created.id}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: "replace", value: { active: false } }],
      });
      assert.equal(off.status, 200);
      assert.equal(off.body.active, false);
      assert.equal((await node.request("GET", `/Users/${created.id}`)).body.active, false);
      const on = await node.request("PUT", `/Users/${created.id}`, {
        ...oktaUser("alan.turing@example.com"),
        id: created.id,
        active: true,
      });
      assert.equal(on.status, 200);
      assert.equal(on.body.active, true);
    });

    it("imports in pages of 100 with a stable order", async () => {
      for (let i = 0; i < 230; i++) {
        const r = await node.request("POST", "/Users", oktaUser(`import${i}@example.com`));
        assert.equal(r.status, 201);
      }
      const pages = async () => {
        const ids: string[] = [];
        let total = 0;
        for (let start = 1; ; start += 100) {
          const page = await node.request("GET", `/Users?startIndex=${start}&count=100`);
          assert.equal(page.status, 200);
          assert.equal(typeof page.body.totalResults, "number");
          assert.equal(page.body.startIndex, start);
          assert.equal(page.body.itemsPerPage, page.body.Resources.length);
          total = page.body.totalResults;
          ids.push(...page.body.Resources.map((r: { id: string }) => r.id));
          if (page.body.Resources.length < 100) break;
        }
        return { ids, total };
      };
      const first = await pages();
      assert.equal(first.ids.length, first.total);
      assert.equal(new Set(first.ids).size, first.ids.length, "no user appears twice");
      assert.deepEqual((await pages()).ids, first.ids, "the order is stable");
    });

    it("pushes a group: lookup, create, rename, membership in one PATCH, full replace, PUT, delete", async () => {
      const u1 = (await node.request("POST", "/Users", oktaUser("member1@example.com"))).body;
      const u2 = (await node.request("POST", "/Users", oktaUser("member2@example.com"))).body;
      const u3 = (await node.request("POST", "/Users", oktaUser("member3@example.com"))).body;
      const miss = await node.request(
        "GET",
        `/Groups?filter=${eq("displayName", "Engineering")}&startIndex=1&count=100`,
      );
      assert.equal(miss.body.totalResults, 0);
      const g = await node.request("POST", "/Groups", {
        schemas: [GROUP_SCHEMA],
        displayName: "Engineering",
        members: [],
      });
      assert.equal(g.status, 201);
      const id = g.body.id;

      const rename = await node.request("PATCH", `/Groups/${id}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: "replace", value: { id, displayName: "Engineering (EU)" } }],
      });
      assert.equal(rename.status, 204);
      assert.equal((await node.request("GET", `/Groups/${id}`)).body.displayName, "Engineering (EU)");

      const add = await node.request("PATCH", `/Groups/${id}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: "add", path: "members", value: [{ value: u1.id, display: "member1@example.com" }] },
        ],
      });
      assert.equal(add.status, 204);
      const swap = await node.request("PATCH", `/Groups/${id}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: "remove", path: `members[value eq "${u1.id}"]` },
          { op: "add", path: "members", value: [{ value: u2.id, display: "member2@example.com" }] },
        ],
      });
      assert.equal(swap.status, 204);
      let got = (await node.request("GET", `/Groups/${id}`)).body;
      assert.deepEqual(
        got.members.map((m: { value: string }) => m.value),
        [u2.id],
      );
      const user2 = (await node.request("GET", `/Users/${u2.id}`)).body;
      assert.deepEqual(
        user2.groups.map((x: { value: string }) => x.value),
        [id],
      );

      const replaceAll = await node.request("PATCH", `/Groups/${id}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: "replace", path: "members", value: [{ value: u1.id }, { value: u3.id }] }],
      });
      assert.equal(replaceAll.status, 204);
      got = (await node.request("GET", `/Groups/${id}`)).body;
      assert.deepEqual(got.members.map((m: { value: string }) => m.value).sort(), [u1.id, u3.id].sort());

      const put = await node.request("PUT", `/Groups/${id}`, {
        schemas: [GROUP_SCHEMA],
        id,
        displayName: "Engineering (EU)",
        members: [{ value: u2.id }, { value: u3.id }],
      });
      assert.equal(put.status, 200);
      assert.deepEqual(put.body.members.map((m: { value: string }) => m.value).sort(), [u2.id, u3.id].sort());

      const noMembers = await node.request(
        "GET",
        `/Groups?filter=${eq("displayName", "engineering (eu)")}&excludedAttributes=members`,
      );
      assert.equal(noMembers.body.totalResults, 1);
      assert.equal(noMembers.body.Resources[0].members, undefined);

      assert.equal((await node.request("DELETE", `/Groups/${id}`)).status, 204);
      const gone = await node.request("GET", `/Groups/${id}`);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.status, "404");
      assert.deepEqual((await node.request("GET", `/Users/${u2.id}`)).body.groups, undefined);
    });

    it("accepts the //Users join that a base URL ending in / produces", async () => {
      const r = await node.request("GET", `//Users?filter=${eq("userName", "nobody@example.com")}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.totalResults, 0);
    });

    it("answers If-Match with 412 when the version moved on", async () => {
      const u = (await node.request("POST", "/Users", oktaUser("etag@example.com"))).body;
      const stale = await node.request(
        "PUT",
        `/Users/${u.id}`,
        oktaUser("etag@example.com", { title: "x" }),
        { "if-match": 'W/"7"' },
      );
      assert.equal(stale.status, 412);
      assert.equal(stale.body.status, "412");
      const fresh = await node.request(
        "PUT",
        `/Users/${u.id}`,
        oktaUser("etag@example.com", { title: "x" }),
        { "if-match": u.meta.version },
      );
      assert.equal(fresh.status, 200);
      const notModified = await node.request("GET", `/Users/${u.id}`, undefined, {
        "if-none-match": fresh.body.meta.version,
      });
      assert.equal(notModified.status, 304);
    });

    it("audits every change with the request id and no secrets", async () => {
      const r = await node.request("POST", "/Users", oktaUser("audited@example.com"), {
        "x-request-id": "req-audit-1",
      });
      const rows = await node.node.store.db.transaction((q) =>
        q.all<{
          request_id: string;
          action: string;
          resource_id: string;
          actor: string;
          client: string;
          attributes: string;
        }>("SELECT * FROM scim_audit WHERE request_id = ?", ["req-audit-1"]),
      );
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.action, "create");
      assert.equal(rows[0]!.resource_id, r.body.id);
      assert.equal(rows[0]!.actor, "bearer");
      assert.equal(rows[0]!.client, "Okta SCIM Client 1.0.0");
      assert.ok(JSON.parse(rows[0]!.attributes).includes("password"));
      assert.ok(!JSON.stringify(rows).includes(PLACEHOLDER_PASSWORD));
    });
  });
}

oktaSuite(
  "SQLite",
  async () => undefined,
  async () => {},
);

let maria: MariaDb | undefined;
oktaSuite(
  "MariaDB",
  async () => {
    maria = await MariaDb.start({ fast: true });
    return maria.createDatabase("okta_seq");
  },
  async () => maria?.destroy(),
);
