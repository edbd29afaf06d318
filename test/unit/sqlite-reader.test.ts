/** The embedded store's reads run in a worker thread: a heavy one neither stops the event loop nor outlives its deadline. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DeadlineExceeded } from "../../src/store/db.js";
import { CONNECTION_PRAGMAS, SqliteDb } from "../../src/store/db-sqlite.js";
import { SqliteReader } from "../../src/store/sqlite-reader.js";

/** A read that keeps SQLite busy for a second or more. */
const HEAVY =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT COUNT(*) AS n FROM c";

/** A plain read through `reader` answers, with the row the suite wrote first. */
async function readsOn(reader: SqliteReader): Promise<void> {
  const rows = await reader.transaction((q) => q.all<{ v: number }>("SELECT v FROM t LIMIT 1"), undefined);
  assert.deepEqual(rows, [{ v: 7 }]);
}

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

  it("answers a quick read while a heavy one is still running on another thread", async () => {
    const done: string[] = [];
    const heavy = db.transaction((q) => q.all(HEAVY), { readOnly: true }).then(() => done.push("heavy"));
    const quick = db
      .transaction((q) => q.all("SELECT v FROM t"), { readOnly: true })
      .then(() => done.push("quick"));
    await Promise.all([heavy, quick]);
    assert.deepEqual(done, ["quick", "heavy"]);
  });

  it("replaces at most maxRetiring threads that are still finishing a statement", async () => {
    const reader = new SqliteReader(join(dir, "r.db"), CONNECTION_PRAGMAS, { threads: 1, maxRetiring: 1 });
    try {
      const ready = () => reader.transaction((q) => q.all("SELECT 1"), undefined);
      const late = () => reader.transaction((q) => q.all(HEAVY), Date.now() + 20);
      // Each heavy read starts on a thread that is up, so it is inside SQLite when its deadline comes.
      await ready();
      await assert.rejects(late(), DeadlineExceeded);
      assert.equal(reader.retiringThreads, 1);
      await ready();
      // The cap is reached: this thread is kept, not replaced, and a read behind it meets its own deadline.
      await assert.rejects(late(), DeadlineExceeded);
      assert.equal(reader.retiringThreads, 1);
      await assert.rejects(
        reader.transaction((q) => q.all("SELECT v FROM t"), Date.now() + 20),
        DeadlineExceeded,
      );
      // Once the kept thread is through, reads go on.
      await readsOn(reader);
    } finally {
      await reader.close();
    }
  });

  it("replaces a thread that died by itself before giving it work", { timeout: 10_000 }, async () => {
    const reader = new SqliteReader(join(dir, "r.db"), CONNECTION_PRAGMAS, { threads: 1 });
    try {
      await reader.transaction((q) => q.all("SELECT 1"), undefined);
      const [slot] = (
        reader as unknown as { slots: { thread: { worker: { terminate(): Promise<number> } } }[] }
      ).slots;
      await slot!.thread.worker.terminate();
      await readsOn(reader);
    } finally {
      await reader.close();
    }
  });
});
