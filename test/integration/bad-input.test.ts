/**
 * Bad input gets the right 4xx SCIM error, and the database is byte-for-byte unchanged afterwards.
 * Runs against a real MariaDB server.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type NodeOnStore, nodeOnStore, type Reply, type TestNode } from "../support/node.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

const TABLES = ["scim_users", "scim_user_attrs", "scim_groups", "scim_group_members", "scim_audit"];

describe("bad input (MariaDB)", () => {
  let fixture: NodeOnStore;
  let node: TestNode;
  let userId: string;
  let groupId: string;

  const snapshot = async () =>
    node.node.store.db.transaction(async (q) => {
      const out: Record<string, unknown[]> = {};
      for (const t of TABLES) out[t] = await q.all(`SELECT * FROM ${t} ORDER BY 1, 2`);
      return JSON.stringify(out);
    });

  function isScimError(r: Reply, status: number, scimType?: string) {
    assert.equal(r.status, status, r.text);
    assert.deepEqual(r.body.schemas, ["urn:ietf:params:scim:api:messages:2.0:Error"]);
    assert.equal(r.body.status, String(status));
    if (scimType) assert.equal(r.body.scimType, scimType);
    assert.equal(typeof r.body.detail, "string");
  }

  before(async () => {
    fixture = await nodeOnStore("mariadb", "bad_input", {
      PROVISIOND_SCIM_MAX_BODY_BYTES: "4096",
      PROVISIOND_SCIM_MAX_RESULTS: "50",
    });
    node = fixture.node;
    userId = (
      await node.request("POST", "/Users", {
        schemas: [USER_SCHEMA],
        userName: "existing@example.com",
        emails: [{ value: "e@example.com", type: "work" }],
      })
    ).body.id;
    await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "other@example.com" });
    groupId = (
      await node.request("POST", "/Groups", {
        schemas: [GROUP_SCHEMA],
        displayName: "Existing",
        members: [{ value: userId }],
      })
    ).body.id;
  });
  after(() => fixture.stop());

  const cases: [string, () => [string, string, unknown, Record<string, string>?], number, string?][] = [
    ["malformed JSON", () => ["POST", "/Users", '{"userName": "x", ', {}], 400, "invalidSyntax"],
    [
      "Microsoft's junk body",
      () => ["POST", "/Users", '{"acve": tre, "adadfdresses": [ {"coudftry": "Beruda"} ]}', {}],
      400,
      "invalidSyntax",
    ],
    [
      "a JSON array instead of an object",
      () => ["POST", "/Users", [{ userName: "x" }], {}],
      400,
      "invalidSyntax",
    ],
    ["no body at all", () => ["POST", "/Users", undefined, {}], 400, "invalidSyntax"],
    [
      "a member named twice (two parsers could read two users)",
      () => [
        "POST",
        "/Users",
        `{"schemas":["${USER_SCHEMA}"],"userName":"a@example.com","userName":"b@example.com"}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a member named twice in a nested object",
      () => [
        "PUT",
        `/Users/${userId}`,
        `{"schemas":["${USER_SCHEMA}"],"userName":"existing@example.com","name":{"givenName":"A","givenName":"B"}}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "one attribute named in two cases (SCIM names are case-insensitive)",
      () => [
        "POST",
        "/Users",
        `{"schemas":["${USER_SCHEMA}"],"userName":"c@example.com","USERNAME":"d@example.com"}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "one attribute named plainly and by its URN",
      () => [
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName: "e@example.com", [`${USER_SCHEMA}:userName`]: "f@example.com" },
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a nested attribute named in two cases",
      () => [
        "PUT",
        `/Users/${userId}`,
        `{"schemas":["${USER_SCHEMA}"],"userName":"existing@example.com","name":{"givenName":"A","GivenName":"B"}}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a group's members named in two cases",
      () => [
        "POST",
        "/Groups",
        `{"schemas":["${GROUP_SCHEMA}"],"displayName":"Twice","members":[],"MEMBERS":[{"value":"${userId}"}]}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a group's members named by their URN beside the plain name",
      () => [
        "POST",
        "/Groups",
        {
          schemas: [GROUP_SCHEMA],
          displayName: "Qualified",
          members: [],
          [`${GROUP_SCHEMA}:members`]: [{ value: userId }],
        },
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a /Bulk whose data nests 100 deep",
      () => [
        "POST",
        "/Bulk",
        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":"POST","path":"/Users","bulkId":"b","data":${"[".repeat(100)}${"]".repeat(100)}}]}`,
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a create without schemas",
      () => ["POST", "/Users", { userName: "plain@example.com" }, {}],
      400,
      "invalidSyntax",
    ],
    [
      "a create whose schemas lack the core schema",
      () => [
        "POST",
        "/Users",
        {
          schemas: ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
          userName: "ent@example.com",
        },
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "a group create without schemas",
      () => ["POST", "/Groups", { displayName: "NoSchemas" }, {}],
      400,
      "invalidSyntax",
    ],
    [
      "a text/plain body",
      () => ["POST", "/Users", '{"userName":"x"}', { "content-type": "text/plain" }],
      400,
      "invalidSyntax",
    ],
    [
      "userName as a number",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], userName: 42 }, {}],
      400,
      "invalidValue",
    ],
    [
      "active as a word",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], userName: "t@example.com", active: "maybe" }, {}],
      400,
      "invalidValue",
    ],
    [
      "emails as a string",
      () => [
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName: "t@example.com", emails: "t@example.com" },
        {},
      ],
      400,
      "invalidValue",
    ],
    [
      "two primary emails",
      () => [
        "POST",
        "/Users",
        {
          schemas: [USER_SCHEMA],
          userName: "t@example.com",
          emails: [
            { value: "a@x", primary: true },
            { value: "b@x", primary: true },
          ],
        },
        {},
      ],
      400,
      "invalidValue",
    ],
    [
      "an unknown attribute",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], userName: "t@example.com", adreses: [] }, {}],
      400,
      "invalidSyntax",
    ],
    [
      "an unknown sub-attribute",
      () => [
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName: "t@example.com", name: { surname: "x" } },
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "an unknown schema",
      () => ["POST", "/Users", { schemas: ["urn:example:nope"], userName: "t@example.com" }, {}],
      400,
      "invalidValue",
    ],
    [
      "no userName",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], displayName: "nobody" }, {}],
      400,
      "invalidValue",
    ],
    [
      "a userName of 300 characters",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], userName: "u".repeat(300) }, {}],
      400,
      "invalidValue",
    ],
    [
      "a body over the size limit",
      () => [
        "POST",
        "/Users",
        { schemas: [USER_SCHEMA], userName: "big@example.com", title: "x".repeat(5000) },
        {},
      ],
      413,
    ],
    [
      "a taken userName, differently cased",
      () => ["POST", "/Users", { schemas: [USER_SCHEMA], userName: "EXISTING@example.com" }, {}],
      409,
      "uniqueness",
    ],
    [
      "a rename onto a taken userName",
      () => [
        "PATCH",
        `/Users/${userId}`,
        {
          schemas: [PATCH_OP],
          Operations: [{ op: "replace", path: "userName", value: "Other@Example.com" }],
        },
        {},
      ],
      409,
      "uniqueness",
    ],
    ["a count that is not a number", () => ["GET", "/Users?count=lots", undefined, {}], 400, "invalidValue"],
    [
      "a repeated filter parameter",
      () => ["GET", `/Users?filter=${encodeURIComponent("userName pr")}&filter=x`, undefined, {}],
      400,
      "invalidValue",
    ],
    [
      "a filter with bad syntax",
      () => ["GET", `/Users?filter=${encodeURIComponent('userName eq "x" and')}`, undefined, {}],
      400,
      "invalidFilter",
    ],
    [
      "a filter on an unknown attribute",
      () => ["GET", `/Users?filter=${encodeURIComponent('shoeSize eq "9"')}`, undefined, {}],
      400,
      "invalidFilter",
    ],
    [
      "a filter nested 5,000 deep",
      () => [
        "GET",
        `/Users?filter=${encodeURIComponent(`${"(".repeat(2000)}userName pr${")".repeat(2000)}`)}`,
        undefined,
        {},
      ],
      400,
      "invalidFilter",
    ],
    [
      "a filter longer than the limit",
      () => [
        "GET",
        `/Users?filter=${encodeURIComponent(`userName eq "${"x".repeat(5000)}"`)}`,
        undefined,
        {},
      ],
      400,
      "invalidFilter",
    ],
    [
      "a filter comparing a boolean with a string",
      () => ["GET", `/Users?filter=${encodeURIComponent('active eq "true"')}`, undefined, {}],
      400,
      "invalidFilter",
    ],
    [
      "sortBy on an unknown attribute",
      () => ["GET", "/Users?sortBy=nosuch", undefined, {}],
      400,
      "invalidValue",
    ],
    [
      "an unknown sortOrder",
      () => ["GET", "/Users?sortBy=userName&sortOrder=sideways", undefined, {}],
      400,
      "invalidValue",
    ],
    [
      "attributes naming nothing",
      () => ["GET", "/Users?attributes=nosuch", undefined, {}],
      400,
      "invalidValue",
    ],
    [
      "PATCH with an unknown op",
      () => [
        "PATCH",
        `/Users/${userId}`,
        { schemas: [PATCH_OP], Operations: [{ op: "merge", path: "title", value: "x" }] },
        {},
      ],
      400,
      "invalidSyntax",
    ],
    [
      "PATCH whose second op fails",
      () => [
        "PATCH",
        `/Users/${userId}`,
        {
          schemas: [PATCH_OP],
          Operations: [
            { op: "replace", path: "title", value: "changed" },
            { op: "replace", path: "nosuch", value: 1 },
          ],
        },
        {},
      ],
      400,
      "invalidPath",
    ],
    [
      "PATCH replace that matches nothing",
      () => [
        "PATCH",
        `/Users/${userId}`,
        {
          schemas: [PATCH_OP],
          Operations: [{ op: "replace", path: 'emails[type eq "home"].value', value: "h@x" }],
        },
        {},
      ],
      400,
      "noTarget",
    ],
    [
      "PATCH of a read-only attribute",
      () => [
        "PATCH",
        `/Users/${userId}`,
        {
          schemas: [PATCH_OP],
          Operations: [{ op: "replace", path: "meta.created", value: "2020-01-01T00:00:00Z" }],
        },
        {},
      ],
      400,
      "mutability",
    ],
    [
      "PATCH with a broken path",
      () => [
        "PATCH",
        `/Users/${userId}`,
        { schemas: [PATCH_OP], Operations: [{ op: "add", path: "emails[type eq", value: "x" }] },
        {},
      ],
      400,
      "invalidPath",
    ],
    [
      "PATCH without Operations",
      () => ["PATCH", `/Users/${userId}`, { schemas: [PATCH_OP] }, {}],
      400,
      "invalidSyntax",
    ],
    [
      "group rename plus a member that does not exist",
      () => [
        "PATCH",
        `/Groups/${groupId}`,
        {
          schemas: [PATCH_OP],
          Operations: [
            { op: "replace", value: { displayName: "Renamed" } },
            { op: "add", path: "members", value: [{ value: "no-such-id" }] },
          ],
        },
        {},
      ],
      400,
      "invalidValue",
    ],
    [
      "a group that contains itself",
      () => [
        "PATCH",
        `/Groups/${groupId}`,
        { schemas: [PATCH_OP], Operations: [{ op: "add", path: "members", value: [{ value: groupId }] }] },
        {},
      ],
      400,
      "invalidValue",
    ],
    [
      "a group without displayName",
      () => ["POST", "/Groups", { schemas: [GROUP_SCHEMA], members: [] }, {}],
      400,
      "invalidValue",
    ],
    [
      "PUT of a user that does not exist",
      () => ["PUT", "/Users/00000000-0000-0000-0000-000000000000", { userName: "ghost@example.com" }, {}],
      404,
    ],
    ["DELETE of a group that does not exist", () => ["DELETE", "/Groups/nope", undefined, {}], 404],
    [
      "a stale If-Match on DELETE",
      () => ["DELETE", `/Users/${userId}`, undefined, { "if-match": 'W/"999"' }],
      412,
    ],
    ["a method the endpoint lacks", () => ["PUT", "/Users", { userName: "x" }, {}], 405],
    ["an endpoint that does not exist", () => ["GET", "/Widgets", undefined, {}], 404],
  ];

  for (const [name, build, status, scimType] of cases) {
    it(`${name} → ${status}${scimType ? ` ${scimType}` : ""}, nothing written`, async () => {
      const before = await snapshot();
      const [method, path, body, headers] = build();
      isScimError(await node.request(method, path, body, headers), status, scimType);
      assert.equal(await snapshot(), before, "the database changed");
    });
  }

  it("SQL meta-characters and LIKE wildcards in filters are plain data", async () => {
    const before = await snapshot();
    for (const v of [`x' OR '1'='1`, "%", "_", "\\", `"); DROP TABLE scim_users; --`]) {
      const esc = JSON.stringify(v);
      for (const op of ["eq", "co", "sw"]) {
        const r = await node.request("GET", `/Users?filter=${encodeURIComponent(`userName ${op} ${esc}`)}`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.totalResults, 0, `userName ${op} ${esc}`);
      }
    }
    assert.equal(await snapshot(), before);
  });

  it("an absurd count is capped at the maximum; a negative count returns no resources", async () => {
    const big = await node.request("GET", "/Users?count=99999999999");
    assert.equal(big.status, 200);
    assert.ok(big.body.itemsPerPage <= 50);
    const neg = await node.request("GET", "/Users?count=-5&startIndex=-3");
    assert.equal(neg.status, 200);
    assert.equal(neg.body.itemsPerPage, 0);
    assert.equal(neg.body.startIndex, 1);
    assert.equal(neg.body.totalResults, 2);
  });
});
