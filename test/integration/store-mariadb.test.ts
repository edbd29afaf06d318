/**
 * The app store against a real MariaDB: concurrent migrations, the circuit breaker through an outage, what a
 * membership change touches, what a member-less group read reads, and the filter property on MariaDB.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Metrics } from "../../src/observability/metrics.js";
import { AppStore } from "../../src/store/index.js";

type CustomColumnDef = Parameters<typeof AppStore.open>[0]["customColumns"][number];

import { MIGRATIONS } from "../../src/store/migrations.js";
import { checkFilterProperty, openPropertyStore, propertySchema } from "../support/filter-property.js";
import { MariaDb } from "../support/mariadb.js";
import { TestNode } from "../support/node.js";
import { GROUP_SCHEMA, PATCH_OP, USER_SCHEMA } from "../support/schemas.js";

/** MariaDB's global handler counters: rows written, updated, deleted and read by all connections. */
async function rowCounters(
  maria: MariaDb,
): Promise<{ written: number; updated: number; deleted: number; read: number }> {
  const c = await maria.admin();
  try {
    const [rows] = await c.query("SHOW GLOBAL STATUS LIKE 'Handler_%'");
    const v = Object.fromEntries(
      (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]),
    );
    const read = [
      "Handler_read_first",
      "Handler_read_key",
      "Handler_read_last",
      "Handler_read_next",
      "Handler_read_prev",
      "Handler_read_rnd",
    ]
      .map((k) => v[k] ?? 0)
      .reduce((a, b) => a + b, 0);
    return {
      written: v.Handler_write ?? 0,
      updated: v.Handler_update ?? 0,
      deleted: v.Handler_delete ?? 0,
      read,
    };
  } finally {
    await c.end();
  }
}

/** An AppStore on `url`, as a node opens it (the property schema's users). */
function openStore(url: string, customColumns: CustomColumnDef[]) {
  return AppStore.open(
    {
      url,
      mysqlPoolSize: 2,
      queryTimeoutMs: 10_000,
      breaker: {
        timeoutMs: 10_000,
        errorThresholdPercentage: 50,
        volumeThreshold: 5,
        resetTimeoutMs: 1000,
        rollingWindowMs: 10_000,
      },
      customColumns,
    },
    propertySchema,
    new Metrics("m"),
  );
}

describe("app store on MariaDB", () => {
  let maria: MariaDb;
  before(async () => {
    maria = await MariaDb.start({ fast: true });
  });
  after(async () => maria.destroy());

  it("runs migrations once when two nodes start at the same time", async () => {
    const url = await maria.createDatabase("migrate_race");
    const open = () =>
      openStore(url, [
        { urn: "urn:x:1", attr: "costCode", column: "cost_code", multiValued: false, type: "string" },
      ]);
    const stores = await Promise.all([open(), open(), open()]);
    const ledger = await stores[0]!.db.transaction((q) =>
      q.all<{ version: number }>("SELECT version FROM provisiond_migrations"),
    );
    assert.deepEqual(
      ledger.map((r) => Number(r.version)),
      MIGRATIONS.map((m) => m.version),
    );
    const cols = await stores[0]!.db.transaction((q) =>
      q.all<{ c: string }>(
        "SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'scim_users' AND COLUMN_NAME = 'cost_code'",
      ),
    );
    assert.equal(cols.length, 1);
    await Promise.all(stores.map((s) => s.close()));
  });

  it("finishes a migration that a crash cut off between two of its statements", async () => {
    const url = await maria.createDatabase("migrate_cut");
    const open = () => openStore(url, []);
    const first = await open();
    // As a node killed inside migrations 2 and 4 leaves it: their first statements applied (MySQL commits DDL
    // at once), the rest and the ledger rows not.
    await first.db.transaction(async (q) => {
      await q.run("DROP INDEX ix_user_attrs_owner_num ON scim_user_attrs");
      await q.run("DROP INDEX ix_audit_idempotency ON scim_audit");
      await q.run("ALTER TABLE scim_audit DROP COLUMN idempotency_key");
      await q.run("DELETE FROM provisiond_migrations WHERE version IN (2, 3, 4)");
    });
    await first.close();
    const again = await open();
    const indexes = await again.db.transaction((q) =>
      q.all<{ n: string }>(
        "SELECT DISTINCT INDEX_NAME AS n FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME IN ('ix_user_attrs_owner_ci', 'ix_user_attrs_owner_num', 'ix_audit_idempotency') ORDER BY n",
      ),
    );
    assert.deepEqual(
      indexes.map((r) => r.n),
      ["ix_audit_idempotency", "ix_user_attrs_owner_ci", "ix_user_attrs_owner_num"],
    );
    const ledger = await again.db.transaction((q) =>
      q.all<{ version: number }>("SELECT version FROM provisiond_migrations ORDER BY version"),
    );
    assert.deepEqual(
      ledger.map((r) => Number(r.version)),
      MIGRATIONS.map((m) => m.version),
    );
    await again.close();
  });

  it("adding or removing one member of a big group writes one membership row", async () => {
    const node = await TestNode.start(await maria.createDatabase("members"));
    try {
      const ids: string[] = [];
      for (let i = 0; i < 1500; i++)
        ids.push(
          (await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: `m${i}@example.com` }))
            .body.id,
        );
      const g = await node.request("POST", "/Groups", {
        schemas: [GROUP_SCHEMA],
        displayName: "Big",
        members: ids.slice(0, 1499).map((value) => ({ value })),
      });
      assert.equal(g.status, 201);
      const before = await rowCounters(maria);
      const add = await node.request("PATCH", `/Groups/${g.body.id}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: "add", path: "members", value: [{ value: ids[1499], display: "last" }] }],
      });
      assert.equal(add.status, 204);
      const mid = await rowCounters(maria);
      // One membership row and one audit row inserted; the group row's version updated; nothing deleted.
      assert.equal(mid.written - before.written, 2);
      assert.equal(mid.updated - before.updated, 1);
      assert.equal(mid.deleted - before.deleted, 0);
      assert.ok(mid.read - before.read < 50, `read ${mid.read - before.read} rows`);

      const remove = await node.request("PATCH", `/Groups/${g.body.id}`, {
        schemas: [PATCH_OP],
        Operations: [{ op: "remove", path: `members[value eq "${ids[0]}"]` }],
      });
      assert.equal(remove.status, 204);
      const end = await rowCounters(maria);
      assert.equal(end.deleted - mid.deleted, 1);
      assert.equal(end.written - mid.written, 1, "only the audit row");

      const r0 = await rowCounters(maria);
      const list = await node.request("GET", "/Groups?excludedAttributes=members");
      assert.equal(list.body.Resources[0].members, undefined);
      const r1 = await rowCounters(maria);
      assert.ok(r1.read - r0.read < 10, "a member-less group read does not read the 1,500 membership rows");
      const r2 = await rowCounters(maria);
      const full = await node.request("GET", `/Groups/${g.body.id}`);
      const r3 = await rowCounters(maria);
      assert.ok(
        r3.read - r2.read >= 1499,
        "reading the members does read their rows (the counter sees them)",
      );
      console.log(
        `rows: add-one-member wrote ${mid.written - before.written}, read ${mid.read - before.read}; member-less list read ${r1.read - r0.read}; full read ${r3.read - r2.read}`,
      );
      assert.equal(full.body.members.length, 1499);
    } finally {
      await node.stop();
    }
  });

  it("answers 503 with Retry-After while MariaDB is down, opens the breaker, and recovers", async () => {
    const node = await TestNode.start(await maria.createDatabase("outage"), {
      PROVISIOND_BREAKER_VOLUME_THRESHOLD: "2",
      PROVISIOND_BREAKER_RESET_MS: "500",
      PROVISIOND_STORE_QUERY_TIMEOUT_MS: "2000",
    });
    try {
      assert.equal(
        (await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "before@example.com" }))
          .status,
        201,
      );
      await maria.stop();
      const seen = new Set<number>();
      for (let i = 0; i < 6; i++) {
        const r = await node.request("POST", "/Users", {
          schemas: [USER_SCHEMA],
          userName: `during${i}@example.com`,
        });
        seen.add(r.status);
        assert.equal(r.status, 503, r.text);
        assert.equal(r.body.status, "503");
        assert.match(r.headers.get("retry-after") ?? "", /^\d+$/);
      }
      const status = await node.status();
      assert.equal(status.breaker.state, "open");
      const metrics = await node.metrics();
      assert.match(metrics, /provisiond_breaker_state\{[^}]*breaker="store"[^}]*\} 2/);
      assert.equal((await fetch(`${node.admin}/readyz`)).status, 503);

      await maria.restart();
      // The breaker lets a trial call through after its reset timeout; keep asking until the store answers.
      let r = await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "after@example.com" });
      for (let i = 0; r.status === 503 && i < 200; i++) {
        await new Promise((res) => setImmediate(res));
        await (await fetch(`${node.admin}/readyz`)).text();
        r = await node.request("POST", "/Users", { schemas: [USER_SCHEMA], userName: "after@example.com" });
      }
      assert.equal(r.status, 201, r.text);
      const users = await node.request("GET", "/Users");
      assert.deepEqual(users.body.Resources.map((u: { userName: string }) => u.userName).sort(), [
        "after@example.com",
        "before@example.com",
      ]);
      assert.equal((await node.status()).breaker.state, "closed");
    } finally {
      await node.stop();
    }
  });

  it("compiled filters select exactly what the evaluator selects, on MariaDB too", async () => {
    const ps = await openPropertyStore(await maria.createDatabase("property"));
    try {
      await checkFilterProperty(ps, { users: 60, runs: 300 });
    } finally {
      await ps.close();
    }
  });
});
