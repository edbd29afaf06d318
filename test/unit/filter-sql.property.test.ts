/**
 * Property: for any filter, the SQL the store compiles selects exactly the users the in-memory evaluator selects.
 * Runs against SQLite here; test/integration/mariadb-filter.test.ts runs the same property against MariaDB.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkFilterProperty, openPropertyStore, type PropertyStore } from "../support/filter-property.js";

describe("filter → SQL agrees with the evaluator (SQLite)", () => {
  let dir: string;
  let ps: PropertyStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "provisiond-prop-"));
    ps = await openPropertyStore(`sqlite:${join(dir, "p.db")}`);
  });
  after(async () => {
    await ps.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it("for 1000 random filters over 60 random users", async () => {
    await checkFilterProperty(ps, { users: 60, runs: 1000 });
  });
});
