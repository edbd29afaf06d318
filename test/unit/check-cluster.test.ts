/** `provisiond check-cluster` (the chart's `helm test`): every node ready and exactly one primary, or a failure. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { adminUrls, checkCluster, UsageError } from "../../src/cli/check-cluster.js";

const servers: Server[] = [];
/** An admin port that answers /readyz with `ready` and /status with this node's id and role. */
async function node(nodeId: string, role: string, ready = 200): Promise<string> {
  const s = createServer((req, res) => {
    if (req.url === "/readyz") res.writeHead(ready).end();
    else if (req.url === "/status")
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ nodeId, role }));
    else res.writeHead(404).end();
  }).listen(0, "127.0.0.1");
  servers.push(s);
  await once(s, "listening");
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}
async function notProvisiond(): Promise<string> {
  const s = createServer((_req, res) => res.writeHead(404).end("nope")).listen(0, "127.0.0.1");
  servers.push(s);
  await once(s, "listening");
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}
const run = async (urls: string[]) => {
  const lines: string[] = [];
  const ok = await checkCluster(urls, (l) => lines.push(l));
  return { ok, last: lines.at(-1)! };
};

describe("check-cluster", () => {
  after(() => {
    for (const s of servers) s.close();
  });

  it("passes with every node ready and one primary; a standalone node is its own primary", async () => {
    assert.deepEqual(await run([await node("a", "primary"), await node("b", "standby")]), {
      ok: true,
      last: "ok: every node ready, one primary",
    });
    assert.equal((await run([await node("s", "standalone")])).ok, true);
  });

  it("fails on two primaries, none, a node not ready, the same node twice, or a port that is not provisiond's", async () => {
    assert.match(
      (await run([await node("a", "primary"), await node("b", "primary")])).last,
      /2 nodes say they are primary/,
    );
    assert.match((await run([await node("a", "standby"), await node("b", "standby")])).last, /no primary/);
    assert.match(
      (await run([await node("a", "primary"), await node("b", "standby", 503)])).last,
      /1 of 2 not ready/,
    );
    const a = await node("a", "primary");
    assert.match((await run([a, a])).last, /named twice/);
    const { ok, last } = await run([await node("a", "primary"), await notProvisiond()]);
    assert.equal(ok, false);
    assert.match(last, /not ready/);
  });

  it("refuses what is not a list of admin URLs before asking anything", () => {
    for (const args of [[], ["--help"], ["node-0:9464"], ["ftp://node-0:9464"]])
      assert.throws(() => adminUrls(args), UsageError, JSON.stringify(args));
    assert.deepEqual(adminUrls(["http://n-0:9464/"]), ["http://n-0:9464"]);
  });
});
