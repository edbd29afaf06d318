/** The embedded store's reads run in a worker thread: a heavy one neither stops the event loop nor outlives its deadline. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DeadlineExceeded } from "../../src/store/db.js";
import { SqliteDb } from "../../src/store/db-sqlite.js";

/** A read that keeps SQLite busy for a second or more. */
const HEAVY =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT COUNT(*) AS n FROM c";

describe("SQLite reads in a worker thread", () => {
  const dir = mkdtempSync(join(tmpdir(), "provisiond-reader-"));
  let db: SqliteDb;
  before(async () => {
    db = new SqliteDb(join(dir, "r.db"));
    await db.transaction((q) => q.run("CREATE TABLE t (v INTEGER)"));
    await db.transaction((q) => q.run("INSERT INTO t VALUES (7)"));
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("leaves the event loop free while a heavy read runs", async () => {
    let settled = false;
    const read = db
      .transaction((q) => q.all<{ n: number }>(HEAVY), { readOnly: true })
      .finally(() => {
        settled = true;
      });
    // A timer fires while the read is still under way: the main thread was not inside SQLite.
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(settled, false, "the read ran on the main thread");
    assert.equal((await read)[0]!.n, 20_000_000);
  });

  it("answers a read that outlives its deadline with DeadlineExceeded, and the next read goes on", async () => {
    await assert.rejects(
      db.transaction((q) => q.all(HEAVY), { readOnly: true, deadline: Date.now() + 50 }),
      DeadlineExceeded,
    );
    const rows = await db.transaction((q) => q.all<{ v: number }>("SELECT v FROM t"), { readOnly: true });
    assert.deepEqual(rows, [{ v: 7 }]);
  });

  it("sees what the writer committed", async () => {
    await db.transaction((q) => q.run("INSERT INTO t VALUES (8)"));
    const rows = await db.transaction((q) => q.all<{ v: number }>("SELECT v FROM t ORDER BY v"), {
      readOnly: true,
    });
    assert.deepEqual(rows, [{ v: 7 }, { v: 8 }]);
  });
});
