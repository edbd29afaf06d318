/** The simulator's cursor paging of app users: every user once, in id order, across assignment changes. */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createOktaSim } from "../../src/okta-sim/server.js";

const TOKEN = "sim-token";
const APP = "0oaPAGING";

describe("okta-sim app-user paging", () => {
  const { app, org } = createOktaSim({ token: TOKEN, appId: APP });
  const server = app.listen(0, "127.0.0.1");
  let base = "";
  before(async () => {
    await new Promise((r) => server.once("listening", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  async function listAll(limit: number, between?: () => void): Promise<string[]> {
    const ids: string[] = [];
    let url: string | undefined = `${base}/api/v1/apps/${APP}/users?limit=${limit}`;
    while (url) {
      const res: Response = await fetch(url, { headers: { authorization: `SSWS ${TOKEN}` } });
      assert.equal(res.status, 200);
      ids.push(...((await res.json()) as { id: string }[]).map((u) => u.id));
      url = /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
      between?.();
      between = undefined;
    }
    return ids;
  }

  it("returns every app user once, in code-unit order of id, page by page", async () => {
    for (let i = 0; i < 23; i++) org.assign(org.createUser({ login: `p${i}@example.com` }).id);
    const ids = await listAll(5);
    assert.equal(ids.length, 23);
    assert.deepEqual(ids, [...org.appUsers.keys()].sort());
  });

  it("a user assigned while paging appears if its id sorts after the cursor, and nothing repeats", async () => {
    const before = new Set(org.appUsers.keys());
    let added = "";
    const ids = await listAll(4, () => {
      added = org.createUser({ login: "late@example.com" }).id;
      org.assign(added);
    });
    assert.equal(new Set(ids).size, ids.length);
    for (const id of before) assert.ok(ids.includes(id), `${id} missing`);
    // The cursor is the last id of the first page: a later id is still ahead of it, an earlier one is not.
    assert.equal(ids.includes(added), added > ids[3]!);
  });

  it("an unassigned user drops out of the listing", async () => {
    const gone = [...org.appUsers.keys()][3]!;
    org.unassign(gone);
    const ids = await listAll(7);
    assert.ok(!ids.includes(gone));
    assert.deepEqual(ids, [...org.appUsers.keys()].sort());
  });
});
