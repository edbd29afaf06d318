/**
 * Values that do not fit the store's columns are 400 invalidValue on both stores, with nothing written: MySQL
 * would refuse them with a bare error (a 500 whose log line carried the statement, password hash included),
 * and SQLite would keep them, so the two stores would disagree.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { UserRepo } from "../../src/store/users.js";
import type { MariaDb } from "../support/mariadb.js";
import { type NodeOnStore, nodeOnStore, type TestNode } from "../support/node.js";
import { waitFor } from "../support/okta-sim.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

const PASSWORD = "Correct-Horse-Battery-9";
/** About a hundred seconds of CPU on MariaDB (its Sequence engine), far past the query timeout. */
const BUSY = "SELECT SUM(a.seq * b.seq) AS s FROM seq_1_to_40000 a, seq_1_to_40000 b";

for (const kind of ["sqlite", "mariadb"] as const) {
  describe(`values wider than their columns (${kind})`, () => {
    let fixture: NodeOnStore;
    let maria: MariaDb | undefined;
    let node: TestNode;
    const count = (table: string) => node.count(`SELECT COUNT(*) AS n FROM ${table}`);

    before(async () => {
      fixture = await nodeOnStore(kind, "limits", {
        PROVISIOND_PASSWORD_SYNC: "true",
        PROVISIOND_SCIM_MAX_PAGE_BYTES: String(128 * 1024),
        PROVISIOND_STORE_QUERY_TIMEOUT_MS: "500",
      });
      ({ node, maria } = fixture);
    });
    after(() => fixture.stop());

    /** An agent's /Bulk, each operation keyed by its bulkId. */
    const agentBulk = (Operations: unknown[]) =>
      node.request(
        "POST",
        "/Bulk",
        { schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], Operations },
        { "idempotency-key": "bulkId" },
      );
    const user = (extra: Record<string, unknown>) => ({
      schemas: [USER_SCHEMA],
      userName: "wide@example.com",
      password: PASSWORD,
      ...extra,
    });
    const cases: [string, () => Promise<{ status: number; body: { scimType?: string; detail?: string } }>][] =
      [
        [
          "a displayName of 1,025 characters",
          () => node.request("POST", "/Users", user({ displayName: "d".repeat(1025) })),
        ],
        [
          "a givenName of 2,000 characters",
          () => node.request("POST", "/Users", user({ name: { givenName: "g".repeat(2000) } })),
        ],
        [
          "an email of 1,100 characters",
          () =>
            node.request("POST", "/Users", user({ emails: [{ value: `${"e".repeat(1090)}@example.com` }] })),
        ],
        [
          "32,768 emails",
          () =>
            node.request(
              "POST",
              "/Users",
              user({ emails: Array.from({ length: 32_768 }, (_, i) => ({ value: `${i}@x.io` })) }),
            ),
        ],
        [
          "a userName of 200 × 'İ' (400 characters once lower-cased)",
          () => node.request("POST", "/Users", user({ userName: "İ".repeat(200) })),
        ],
        [
          "an agent write to a 600-character id",
          () =>
            node.request("DELETE", `/Users/${"i".repeat(600)}`, undefined, { "idempotency-key": "evt-wide" }),
        ],
      ];
    for (const [what, send] of cases) {
      it(`refuses ${what} with 400 invalidValue and writes nothing`, async () => {
        const before = [
          await count("scim_users"),
          await count("scim_audit"),
          await count("provisiond_idempotency"),
        ];
        const r = await send();
        assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
        assert.equal(r.body.scimType, "invalidValue");
        assert.deepEqual(
          [await count("scim_users"), await count("scim_audit"), await count("provisiond_idempotency")],
          before,
        );
      });
    }

    it("in a /Bulk, a value too wide fails its own operation only", async () => {
      const op = (bulkId: string, extra: Record<string, unknown>) => ({
        method: "POST",
        path: "/Users",
        bulkId,
        data: { schemas: [USER_SCHEMA], ...extra },
      });
      const r = await node.request("POST", "/Bulk", {
        schemas: ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        Operations: [
          op("ok1", { userName: "bulk-ok1@example.com" }),
          op("wide", { userName: "bulk-wide@example.com", displayName: "w".repeat(2000) }),
          op("ok2", { userName: "bulk-ok2@example.com" }),
        ],
      });
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      assert.deepEqual(
        r.body.Operations.map((o: { status: string }) => o.status),
        ["201", "400", "201"],
      );
    });

    it("in an agent /Bulk, an operation whose path is too long to record fails alone, with 400", async () => {
      const r = await agentBulk([
        { method: "DELETE", path: `/Users/${"p".repeat(600)}`, bulkId: "long-path" },
        {
          method: "POST",
          path: "/Users",
          bulkId: "short-path",
          data: user({ userName: "bulk-sig@example.com" }),
        },
      ]);
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      const [long, short] = r.body.Operations;
      assert.equal(long.status, "400", JSON.stringify(long).slice(0, 300));
      assert.equal(long.response.scimType, "invalidValue");
      assert.equal(short.status, "201");
    });

    it("in an agent /Bulk, bulkIds that differ by a trailing space are not taken for one key", async () => {
      const r = await agentBulk([
        { method: "POST", path: "/Users", bulkId: "pad", data: user({ userName: "pad-1@example.com" }) },
        { method: "POST", path: "/Users", bulkId: "pad ", data: user({ userName: "pad-2@example.com" }) },
      ]);
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
      const [first, second] = r.body.Operations;
      assert.equal(first.status, "201");
      assert.equal(second.status, "400", JSON.stringify(second).slice(0, 300));
      const found = await node.request("GET", `/Users?filter=${encodeURIComponent('userName sw "pad-"')}`);
      assert.equal(found.body.totalResults, 1);
    });

    it("a value that fits to the character is kept (widths count code points, as MySQL's VARCHAR does)", async () => {
      const displayName = "😀".repeat(1024); // 2,048 UTF-16 units, 1,024 characters
      const r = await node.request("POST", "/Users", user({ userName: "fits@example.com", displayName }));
      assert.equal(r.status, 201, JSON.stringify(r.body).slice(0, 300));
      assert.equal((await node.request("GET", `/Users/${r.body.id}`)).body.displayName, displayName);
    });

    it("a resource that PATCH would grow past 1 MiB is refused, and stays as it was", async () => {
      const certs = (n: number, tag: string) =>
        Array.from({ length: n }, (_, i) => ({
          value: Buffer.from(`${tag}${i}`.padEnd(45_000, "c")).toString("base64"),
        }));
      const created = await node.request("POST", "/Users", user({ userName: "grows@example.com" }));
      assert.equal(created.status, 201);
      const add = (tag: string) =>
        node.request("PATCH", `/Users/${created.body.id}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: "add", path: "x509Certificates", value: certs(12, tag) }],
        });
      assert.equal((await add("a")).status, 200);
      const second = await add("b");
      assert.equal(second.status, 400, JSON.stringify(second.body).slice(0, 300));
      assert.equal(second.body.scimType, "invalidValue");
      const now = (await node.request("GET", `/Users/${created.body.id}`)).body;
      assert.equal(now.x509Certificates.length, 12);
    });

    it("a list page holds what fits in its byte cap, and says so in itemsPerPage", async () => {
      // Each of these users is about 60 kB of JSON; the cap is 128 kB.
      const big = { x509Certificates: [{ value: Buffer.from("k".repeat(45_000)).toString("base64") }] };
      for (let i = 0; i < 5; i++)
        assert.equal(
          (await node.request("POST", "/Users", user({ userName: `page${i}@example.com`, ...big }))).status,
          201,
        );
      const seen: string[] = [];
      let startIndex = 1;
      for (;;) {
        const q = `/Users?filter=${encodeURIComponent('userName sw "page"')}&startIndex=${startIndex}&count=5`;
        const page = (await node.request("GET", q)).body;
        assert.equal(page.totalResults, 5);
        assert.equal(page.itemsPerPage, page.Resources.length);
        assert.ok(page.itemsPerPage >= 1 && page.itemsPerPage <= 2, `a page of ${page.itemsPerPage}`);
        seen.push(...page.Resources.map((r: { userName: string }) => r.userName));
        startIndex += page.itemsPerPage;
        if (startIndex > 5) break;
      }
      assert.deepEqual(
        seen.sort(),
        [0, 1, 2, 3, 4].map((i) => `page${i}@example.com`),
      );
      // Documents are loaded a chunk of at most the cap at a time, not the whole `count` to trim afterwards.
      const chunks: number[] = [];
      const bySeq = UserRepo.prototype.bySeq;
      UserRepo.prototype.bySeq = function (seqs) {
        chunks.push(seqs.length);
        return bySeq.call(this, seqs);
      };
      try {
        await node.request("GET", `/Users?filter=${encodeURIComponent('userName sw "page"')}&count=5`);
      } finally {
        UserRepo.prototype.bySeq = bySeq;
      }
      assert.ok(chunks.length > 0 && Math.max(...chunks) <= 2, `chunks of ${chunks.join(", ")}`);
      // The cap counts what the response holds: leave the certificates out, and all five fit.
      const lean = await node.request(
        "GET",
        `/Users?filter=${encodeURIComponent('userName sw "page"')}&count=5&excludedAttributes=x509Certificates`,
      );
      assert.equal(lean.body.itemsPerPage, 5);
    });

    it("a root /.search page cut by the byte cap neither skips nor repeats a resource", async () => {
      // Two small users, then one larger than the cap by itself: the users part of a page ends early.
      const cert = () => ({ value: Buffer.from("s".repeat(45_000)).toString("base64") });
      for (const [name, certs] of [
        ["search-1@example.com", 0],
        ["search-2@example.com", 0],
        ["search-3@example.com", 3],
      ] as const)
        assert.equal(
          (
            await node.request(
              "POST",
              "/Users",
              user({ userName: name, x509Certificates: Array.from({ length: certs }, cert) }),
            )
          ).status,
          201,
        );
      for (const name of ["search-a", "search-b"])
        assert.equal(
          (await node.request("POST", "/Groups", { schemas: [GROUP_SCHEMA], displayName: name })).status,
          201,
        );
      const seen: string[] = [];
      let startIndex = 1;
      let total = 0;
      do {
        const page = (
          await node.request("POST", "/.search", {
            schemas: ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            startIndex,
            count: 5,
          })
        ).body;
        total = page.totalResults;
        assert.ok(page.itemsPerPage >= 1, JSON.stringify(page).slice(0, 300));
        seen.push(...page.Resources.map((r: { id: string }) => r.id));
        startIndex += page.itemsPerPage;
      } while (startIndex <= total);
      assert.equal(new Set(seen).size, seen.length, "a resource came twice");
      assert.equal(seen.length, total);
    });

    it("a filter may search multi-valued attributes at most 8 times, sortBy included", async () => {
      const terms = (n: number) =>
        Array.from({ length: n }, (_, i) => `emails.value eq "t${i}@example.com"`).join(" or ");
      const list = (q: string) => node.request("GET", `/Users?${q}`);
      assert.equal((await list(`filter=${encodeURIComponent(terms(8))}`)).status, 200);
      for (const q of [
        `filter=${encodeURIComponent(terms(9))}`,
        `filter=${encodeURIComponent(terms(8))}&sortBy=emails.value`,
      ]) {
        const r = await list(q);
        assert.equal(r.status, 400, q);
        assert.equal(r.body.scimType, "invalidFilter");
        assert.match(r.body.detail, /at most 8 are allowed \(PROVISIOND_SCIM_MAX_FILTER_TERMS\)/);
      }
      // Column-backed attributes cost nothing: the agent's lookups by externalId are long ORs of them.
      const ids = Array.from({ length: 50 }, (_, i) => `externalId eq "x${i}"`).join(" or ");
      assert.equal((await list(`filter=${encodeURIComponent(ids)}`)).status, 200);
    });

    if (kind === "sqlite")
      it("answers /healthz while a heavy read runs", async () => {
        let settled = false;
        const heavy =
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT COUNT(*) AS n FROM c";
        const read = node.node.store.db
          .transaction((q) => q.all(heavy), { readOnly: true })
          .finally(() => {
            settled = true;
          });
        assert.equal((await fetch(`${node.admin}/healthz`)).status, 200);
        assert.equal(settled, false, "/healthz waited for the read");
        await read;
      });

    if (kind === "mariadb")
      it("a statement past the query timeout is stopped by the server, not only given up by the client", async () => {
        // Every store session carries the limit, so the server itself ends a statement at the query timeout.
        const [limit] = await node.node.store.db.transaction((q) =>
          q.all<{ m: number }>("SELECT @@SESSION.max_statement_time AS m"),
        );
        assert.equal(Number(limit!.m), 0.5);
        // The client gives up at its timeout; without that limit the statement would go on for minutes.
        await assert.rejects(node.node.store.db.transaction((q) => q.all(BUSY)));
        await waitFor("the server to have stopped the statement", async () => {
          const c = await maria!.admin();
          try {
            const [rows] = await c.query(
              "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SUM(a.seq%'",
            );
            return Number((rows as { n: number }[])[0]!.n) === 0;
          } finally {
            await c.end();
          }
        });
      });

    it("trailing spaces mean the same on both stores: a userName cannot end in one, and eq does not ignore them", async () => {
      const padded = await node.request("POST", "/Users", user({ userName: "padded@example.com " }));
      assert.equal(padded.status, 400);
      assert.equal(padded.body.scimType, "invalidValue");
      const made = await node.request(
        "POST",
        "/Users",
        user({
          userName: "padded@example.com",
          externalId: "ext-pad ",
          emails: [{ value: "padded@example.com" }],
        }),
      );
      assert.equal(made.status, 201);
      const found = async (filter: string) =>
        (await node.request("GET", `/Users?filter=${encodeURIComponent(filter)}`)).body.totalResults;
      assert.equal(await found('userName eq "padded@example.com"'), 1);
      assert.equal(await found('userName eq "padded@example.com   "'), 0);
      assert.equal(await found('emails.value eq "padded@example.com  "'), 0);
      assert.equal(await found('externalId eq "ext-pad"'), 0, "a stored trailing space counts too");
      assert.equal(await found('externalId eq "ext-pad "'), 1);
      assert.equal(await found('userName ne "padded@example.com "'), await found("userName pr"));
    });

    it("a user stored before a rule existed stays writable: only the values a write changes are checked", async () => {
      const made = await node.request("POST", "/Users", user({ userName: "legacy@example.com" }));
      assert.equal(made.status, 201);
      // As an older version left it: a trailing space, and on SQLite (which keeps any length) a wide displayName.
      // MySQL never held a value wider than its column, so there the wide value is not legacy but new.
      const legacy = {
        ...made.body,
        userName: "legacy@example.com ",
        displayName: kind === "sqlite" ? "L".repeat(1500) : "short",
      };
      delete legacy.meta;
      await node.node.store.db.transaction((q) =>
        q.run("UPDATE scim_users SET doc = ? WHERE id = ?", [JSON.stringify(legacy), made.body.id]),
      );
      const patch = (value: Record<string, unknown>) =>
        node.request("PATCH", `/Users/${made.body.id}`, {
          schemas: [PATCH_OP],
          Operations: [{ op: "replace", value }],
        });
      const deactivated = await patch({ active: false });
      assert.equal(deactivated.status, 200, JSON.stringify(deactivated.body).slice(0, 300));
      assert.equal(deactivated.body.active, false);
      const put = await node.request("PUT", `/Users/${made.body.id}`, { ...legacy, title: "kept" });
      assert.equal(put.status, 200, JSON.stringify(put.body).slice(0, 300));
      const wider = await patch({ displayName: "W".repeat(1500) });
      assert.equal(wider.status, 400);
      assert.equal(wider.body.scimType, "invalidValue");
      const renamed = await patch({ userName: "renamed@example.com " });
      assert.equal(renamed.status, 400);
      const now = (await node.request("GET", `/Users/${made.body.id}`)).body;
      assert.equal(now.displayName, legacy.displayName);
      assert.equal(now.title, "kept");
    });

    it("never logs a password hash", async () => {
      assert.ok(!node.logs.join("").includes("scrypt$"), "a password hash reached the logs");
    });
  });
}
