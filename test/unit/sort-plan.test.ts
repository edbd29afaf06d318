/**
 * A sort on a multi-valued attribute is one correlated subquery per user: SQLite must answer it from the
 * owner-first index, or it scans every user's values for every user (216 s at 21k users before that index).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Metrics } from "../../src/observability/metrics.js";
import { enterpriseUserSchema, ResourceSchema, userSchema } from "../../src/scim/model/schema.js";
import { userSortExpr } from "../../src/store/filter-sql.js";
import { AppStore } from "../../src/store/index.js";

describe("the sort's query plan (SQLite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "provisiond-plan-"));
  const rs = new ResourceSchema("User", "/Users", userSchema, [enterpriseUserSchema]);
  let store: AppStore;
  before(async () => {
    store = await AppStore.open(
      {
        url: `sqlite:${join(dir, "plan.db")}`,
        mysqlPoolSize: 1,
        queryTimeoutMs: 10_000,
        breaker: {
          timeoutMs: 10_000,
          errorThresholdPercentage: 50,
          volumeThreshold: 1000,
          resetTimeoutMs: 1000,
          rollingWindowMs: 10_000,
        },
        customColumns: [],
      },
      rs,
      new Metrics("plan"),
    );
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const sortBy of ["emails.value", "phoneNumbers.value", "emails.primary"]) {
    it(`looks ${sortBy} up by owner, from the index alone`, async () => {
      const sort = userSortExpr(rs, sortBy);
      const plan = await store.db.transaction((q) =>
        q.all<{ detail: string }>(
          `EXPLAIN QUERY PLAN SELECT u.seq FROM scim_users u ORDER BY ${sort.sql}`,
          sort.params,
        ),
      );
      const sub = plan.map((r) => r.detail).filter((d) => /^(SEARCH|SCAN) r\b/.test(d));
      assert.ok(sub.length > 0, JSON.stringify(plan));
      for (const d of sub)
        assert.match(
          d,
          /^SEARCH r USING COVERING INDEX ix_user_attrs_owner_(ci|num) \(owner=\? AND attr=\? AND sub=\?\)/,
        );
    });
  }
});
