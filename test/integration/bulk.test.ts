/**
 * POST /Bulk (RFC 7644 §3.7) against MariaDB and SQLite: operations in order with bulkId references, errors per
 * operation and failOnErrors, the batched create path, and the agent's guards (bulkIds as idempotency keys,
 * one fencing token for the whole request), including identical bulks racing each other.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type NodeOnStore, nodeOnStore, type Reply, type TestNode } from "../support/node.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

const BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

interface Op {
  method: string;
  path: string;
  bulkId?: string;
  data?: unknown;
  version?: string;
}

const user = (bulkId: string, userName: string): Op => ({
  method: "POST",
  path: "/Users",
  bulkId,
  data: { schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName },
});

for (const store of ["MariaDB", "SQLite"] as const) {
  describe(`POST /Bulk (${store})`, () => {
    let fixture: NodeOnStore;
    let node: TestNode;
    const bulk = (ops: Op[], headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
      node.request("POST", "/Bulk", { schemas: [BULK], ...extra, Operations: ops }, headers);
    const statuses = (r: Reply) => (r.body.Operations as { status: string }[]).map((o) => o.status);
    const snapshot = async () =>
      [
        await node.count("SELECT COUNT(*) AS n FROM scim_users"),
        await node.count("SELECT COUNT(*) AS n FROM scim_groups"),
        await node.count("SELECT COUNT(*) AS n FROM scim_audit"),
        await node.count("SELECT COUNT(*) AS n FROM provisiond_idempotency"),
      ].join(",");

    before(async () => {
      fixture = await nodeOnStore(store === "MariaDB" ? "mariadb" : "sqlite", "bulk");
      node = fixture.node;
    });
    after(() => fixture.stop());

    it("is advertised in ServiceProviderConfig", async () => {
      const spc = (await node.request("GET", "/ServiceProviderConfig")).body;
      assert.deepEqual(spc.bulk, { supported: true, maxOperations: 1000, maxPayloadSize: 1_048_576 });
    });

    it("runs operations in order and resolves bulkId references", async () => {
      const r = await bulk([
        user("u1", "bulk.one@example.com"),
        user("u2", "bulk.two@example.com"),
        user("u3", "bulk.three@example.com"),
        {
          method: "POST",
          path: "/Groups",
          bulkId: "g1",
          data: {
            schemas: [GROUP_SCHEMA],
            displayName: "Bulk group",
            members: [{ value: "bulkId:u1" }, { value: "bulkId:u2" }],
          },
        },
        {
          method: "PATCH",
          path: "/Users/bulkId:u3",
          data: { schemas: [PATCH_OP], Operations: [{ op: "replace", value: { displayName: "Three" } }] },
        },
        { method: "DELETE", path: "/Users/bulkId:u2" },
      ]);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.schemas, ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]);
      assert.deepEqual(statuses(r), ["201", "201", "201", "201", "200", "204"]);
      const [u1, , u3, g1] = r.body.Operations;
      assert.match(u1.location, /\/scim\/v2\/Users\/[0-9a-f-]{36}$/);
      assert.equal(u1.version, 'W/"1"');
      assert.equal(u1.bulkId, "u1");
      const id1 = u1.location.split("/").pop();
      const id3 = u3.location.split("/").pop();
      assert.equal(r.body.Operations[4].location, u3.location);
      assert.equal((await node.request("GET", `/Users/${id3}`)).body.displayName, "Three");
      const group = (await node.request("GET", g1.location.replace(/^.*\/scim\/v2/, ""))).body;
      // u2 was deleted by a later operation, which takes it out of the group.
      assert.deepEqual(
        group.members.map((m: { value: string }) => m.value),
        [id1],
      );
    });

    it("answers each operation's error on its own, and failOnErrors stops after that many", async () => {
      const before = await node.count("SELECT COUNT(*) AS n FROM scim_users");
      const r = await bulk([
        user("a", "errs.a@example.com"),
        {
          method: "POST",
          path: "/Users",
          bulkId: "bad",
          data: { schemas: [USER_SCHEMA], displayName: "no userName" },
        },
        user("dup", "bulk.one@example.com"),
        user("b", "errs.b@example.com"),
        user("b2", "ERRS.B@example.com"),
        { method: "DELETE", path: "/Users/bulkId:nope" },
        { method: "PUT", path: "/Users/00000000-0000-0000-0000-000000000000", data: { userName: "x" } },
      ]);
      assert.equal(r.status, 200);
      assert.deepEqual(statuses(r), ["201", "400", "409", "201", "409", "409", "404"]);
      assert.equal(r.body.Operations[1].response.scimType, "invalidValue");
      assert.equal(r.body.Operations[2].response.scimType, "uniqueness");
      assert.equal(r.body.Operations[1].response.status, "400");
      assert.equal(await node.count("SELECT COUNT(*) AS n FROM scim_users"), before + 2);

      const stopped = await bulk(
        [
          user("c", "errs.c@example.com"),
          user("dup", "bulk.one@example.com"),
          user("d", "errs.d@example.com"),
        ],
        {},
        { failOnErrors: 1 },
      );
      assert.deepEqual(statuses(stopped), ["201", "409"]);
      assert.equal(
        await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["errs.d@example.com"]),
        0,
      );
    });

    it("refuses a malformed bulk request as a whole and writes nothing", async () => {
      const was = await snapshot();
      const cases: [number, unknown, Record<string, string>?][] = [
        [400, { Operations: [user("x", "m1@example.com")] }],
        [400, { schemas: [BULK], Operations: {} }],
        [
          400,
          {
            schemas: [BULK],
            Operations: [
              { method: "POST", path: "/Users", data: { schemas: [USER_SCHEMA], userName: "m2" } },
            ],
          },
        ],
        [400, { schemas: [BULK], Operations: [{ ...user("x", "m3@example.com"), method: "GET" }] }],
        [400, { schemas: [BULK], Operations: [{ ...user("x", "m4@example.com"), path: "/Users/123" }] }],
        [400, { schemas: [BULK], Operations: [user("x", "m5@example.com"), user("x", "m6@example.com")] }],
        [400, { schemas: [BULK], failOnErrors: 0, Operations: [user("x", "m7@example.com")] }],
        [400, { schemas: [BULK], Operations: [user("x", "m8@example.com")] }, { "idempotency-key": "whole" }],
        [
          413,
          {
            schemas: [BULK],
            Operations: Array.from({ length: 1001 }, (_, i) => user(`m${i}`, `m${i}@x.com`)),
          },
        ],
      ];
      for (const [status, body, headers] of cases) {
        const r = await node.request("POST", "/Bulk", body, headers ?? {});
        assert.equal(r.status, status, JSON.stringify(body).slice(0, 120));
        assert.deepEqual(r.body.schemas, ["urn:ietf:params:scim:api:messages:2.0:Error"]);
        assert.ok(r.body.detail);
      }
      assert.equal(await snapshot(), was);
    });

    it("with Idempotency-Key: bulkId, a repeated bulk replays every operation and writes nothing", async () => {
      const headers = { "idempotency-key": "bulkId", "x-provisiond-fencing-token": "5" };
      const ops = Array.from({ length: 30 }, (_, i) => user(`evt-${i}:create`, `keyed${i}@example.com`));
      const first = await bulk(ops, headers);
      assert.deepEqual(new Set(statuses(first)), new Set(["201"]));
      const was = await snapshot();
      const again = await bulk(ops, headers);
      assert.deepEqual(again.body, first.body);
      assert.equal(await snapshot(), was);
      assert.equal(
        await node.count("SELECT COUNT(*) AS n FROM scim_audit WHERE idempotency_key LIKE ?", [
          "evt-%:create",
        ]),
        30,
      );
      // A key applied by a bulk replays as a single request with the full body, and the other way round.
      const single = await node.request("POST", "/Users", ops[0]!.data, {
        "idempotency-key": "evt-0:create",
        "x-provisiond-fencing-token": "5",
      });
      assert.equal(single.status, 201);
      assert.equal(single.headers.get("idempotent-replayed"), "true");
      assert.equal(single.headers.get("location"), first.body.Operations[0].location);
      assert.equal(single.body.userName, "keyed0@example.com");
      const alone = await node.request("POST", "/Users", user("", "alone@example.com").data, {
        "idempotency-key": "evt-alone:create",
      });
      const mixed = await bulk(
        [user("evt-alone:create", "alone@example.com"), user("evt-new:create", "new@example.com")],
        headers,
      );
      assert.deepEqual(statuses(mixed), ["201", "201"]);
      assert.equal(mixed.body.Operations[0].location, alone.headers.get("location"));
      // The same key for another kind of request is refused for that operation only.
      const reused = await bulk(
        [{ method: "DELETE", path: "/Users/bulkId:x", bulkId: "evt-new:create" }],
        headers,
      );
      assert.deepEqual(statuses(reused), ["409"]);
    });

    it("applies identical keyed bulks racing each other exactly once", async () => {
      const headers = { "idempotency-key": "bulkId", "x-provisiond-fencing-token": "5" };
      const ops = Array.from({ length: 40 }, (_, i) => user(`race-${i}:create`, `race${i}@example.com`));
      const replies = await Promise.all(Array.from({ length: 6 }, () => bulk(ops, headers)));
      for (const r of replies) assert.deepEqual(new Set(statuses(r)), new Set(["201"]));
      const locations = replies.map((r) =>
        JSON.stringify(r.body.Operations.map((o: { location: string }) => o.location)),
      );
      assert.equal(new Set(locations).size, 1, "every reply names the same users");
      assert.equal(
        await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name LIKE ?", ["race%"]),
        40,
      );
      assert.equal(
        await node.count("SELECT COUNT(*) AS n FROM scim_audit WHERE idempotency_key LIKE ?", ["race-%"]),
        40,
      );
    });

    it("refuses a bulk with a stale fencing token as a whole, and writes nothing", async () => {
      await bulk([user("f1", "fence1@example.com")], { "x-provisiond-fencing-token": "9" });
      const was = await snapshot();
      const r = await bulk([user("f2", "fence2@example.com"), user("f3", "fence3@example.com")], {
        "x-provisiond-fencing-token": "8",
      });
      assert.equal(r.status, 409);
      assert.match(r.body.detail, /fencing token 8 is stale/);
      assert.equal(await snapshot(), was);
    });

    it("needs authentication", async () => {
      const res = await fetch(`${node.base}/Bulk`, {
        method: "POST",
        headers: { "content-type": "application/scim+json" },
        body: JSON.stringify({ schemas: [BULK], Operations: [user("z", "noauth@example.com")] }),
      });
      assert.equal(res.status, 401);
      assert.equal(
        await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["noauth@example.com"]),
        0,
      );
    });
  });
}
