/**
 * The agent's guarantees at the connector, against MariaDB: an Idempotency-Key applies once and replays its
 * recorded answer; a stale fencing token is refused and counted; both live in the write's own transaction.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { assertHistory, type Query } from "../support/history.js";
import { metricValue } from "../support/metrics.js";
import { type NodeOnStore, nodeOnStore, type TestNode } from "../support/node.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

describe("idempotency keys and fencing tokens (MariaDB)", () => {
  let fixture: NodeOnStore;
  let node: TestNode;

  before(async () => {
    fixture = await nodeOnStore("mariadb", "guards");
    node = fixture.node;
  });
  after(() => fixture.stop());

  it("applies a keyed write once and answers a replay with the recorded response", async () => {
    const headers = { "idempotency-key": "evt-1/create", "x-provisiond-fencing-token": "10" };
    const first = await node.request(
      "POST",
      "/Users",
      { schemas: [USER_SCHEMA], userName: "once@example.com" },
      headers,
    );
    assert.equal(first.status, 201);
    const again = await node.request(
      "POST",
      "/Users",
      { schemas: [USER_SCHEMA], userName: "once@example.com" },
      headers,
    );
    assert.equal(again.status, 201);
    assert.equal(again.text, first.text);
    assert.equal(again.headers.get("etag"), first.headers.get("etag"));
    assert.equal(again.headers.get("location"), first.headers.get("location"));
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["once@example.com"]),
      1,
    );
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_audit WHERE idempotency_key = ?", ["evt-1/create"]),
      1,
    );
  });

  it("applies concurrent requests with one key exactly once", async () => {
    const headers = { "idempotency-key": "evt-2/create", "x-provisiond-fencing-token": "10" };
    const replies = await Promise.all(
      Array.from({ length: 12 }, () =>
        node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "race@example.com" }, headers),
      ),
    );
    assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([201]));
    assert.equal(new Set(replies.map((r) => r.text)).size, 1, "every reply is the recorded one");
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["race@example.com"]),
      1,
    );
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_audit WHERE idempotency_key = ?", ["evt-2/create"]),
      1,
    );
  });

  it("replays 204s and refuses a key reused for another request", async () => {
    const u = (
      await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "member@example.com" })
    ).body;
    const g = (await node.request("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: "G" })).body;
    const op = {
      schemas: [PATCH_OP],
      Operations: [{ op: "add", path: "members", value: [{ value: u.id }] }],
    };
    const headers = { "idempotency-key": "evt-3/members" };
    assert.equal((await node.request("PATCH", `/Groups/${g.id}`, op, headers)).status, 204);
    const replay = await node.request("PATCH", `/Groups/${g.id}`, op, headers);
    assert.equal(replay.status, 204);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_audit WHERE idempotency_key = ?", ["evt-3/members"]),
      1,
    );
    const reused = await node.request("DELETE", `/Groups/${g.id}`, undefined, headers);
    assert.equal(reused.status, 422);
    assert.equal((await node.request("GET", `/Groups/${g.id}`)).status, 200, "the reused key wrote nothing");
  });

  it("refuses a write from an older term, counts it, and writes nothing", async () => {
    const metric = async () => metricValue(await node.metrics(), "provisiond_fencing_rejections_total");
    const before = await metric();
    assert.equal(
      (
        await node.request(
          "POST",
          "/Users",
          { schemas: [USER_SCHEMA], userName: "term20@example.com" },
          { "x-provisiond-fencing-token": "20" },
        )
      ).status,
      201,
    );
    const stale = await node.request(
      "POST",
      "/Users",
      { schemas: [USER_SCHEMA], userName: "term10@example.com" },
      { "x-provisiond-fencing-token": "10", "idempotency-key": "evt-4/create" },
    );
    assert.equal(stale.status, 409);
    assert.equal(stale.body.status, "409");
    assert.match(stale.body.detail, /fencing token 10 is stale; the current term is 20/);
    assert.equal(await metric(), before + 1);
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["term10@example.com"]),
      0,
    );
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM provisiond_idempotency WHERE idem_key = ?", [
        "evt-4/create",
      ]),
      0,
    );
    assert.equal(
      (
        await node.request(
          "POST",
          "/Users",
          { schemas: [USER_SCHEMA], userName: "term20b@example.com" },
          { "x-provisiond-fencing-token": "20" },
        )
      ).status,
      201,
    );
    assert.equal(await node.count("SELECT token AS n FROM provisiond_fencing"), 20);
  });

  it("leaves plain SCIM clients alone and validates the headers", async () => {
    assert.equal(
      (await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "plain@example.com" }))
        .status,
      201,
    );
    for (const headers of <Record<string, string>[]>[
      { "x-provisiond-fencing-token": "-3" },
      { "x-provisiond-fencing-token": "1e9" },
      { "idempotency-key": "has space" },
    ]) {
      const r = await node.request(
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName: "badheader@example.com" },
        headers,
      );
      assert.equal(r.status, 400, JSON.stringify(headers));
    }
    assert.equal(
      await node.count("SELECT COUNT(*) AS n FROM scim_users WHERE user_name = ?", ["badheader@example.com"]),
      0,
    );
  });

  it("forgets keys past their retention", async () => {
    const n = await node.node.store.purgeIdempotency(new Date(Date.now() + 60_000));
    assert.ok(n >= 3);
    assert.equal(await node.count("SELECT COUNT(*) AS n FROM provisiond_idempotency"), 0);
  });

  it("leaves a history the checker accepts: terms never go back, and no key applies twice", async () => {
    const query: Query = (sql, params = []) => node.node.store.db.transaction((q) => q.all(sql, params));
    const write = (userName: string, token: string, key: string) =>
      node.request(
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName },
        {
          "x-provisiond-fencing-token": token,
          "idempotency-key": key,
        },
      );
    assert.equal((await write("history40@example.com", "40", "evt-h1:create")).status, 201);
    assert.equal((await write("history40@example.com", "40", "evt-h1:create")).status, 201, "a replay");
    assert.equal((await write("history35@example.com", "35", "evt-h2:create")).status, 409, "an older term");
    const h = await assertHistory(query);
    assert.deepEqual(h.terms.slice(-1), [40]);
  });
});
