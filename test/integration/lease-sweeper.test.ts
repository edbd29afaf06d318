/**
 * LeaseSweeper against a real three-member etcd: it revokes an abandoned lease once it has expired and never before, and it
 * leaves a lease that is kept alive alone.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { etcdClient } from "../../src/cluster/etcd.js";
import { LeaseSweeper } from "../../src/cluster/lease-sweeper.js";
import { Metrics } from "../../src/observability/metrics.js";
import { EtcdCluster } from "../support/etcd.js";

const silent = pino({ level: "silent" });

describe("LeaseSweeper (etcd)", () => {
  let etcd: EtcdCluster;
  before(async () => {
    // Three members: a follower forwards LeaseTimeToLive and LeaseRevoke to the leader.
    etcd = await EtcdCluster.start(3);
  });
  after(async () => etcd.destroy());

  const revokedByUs = async (m: Metrics) => (await m.expiredLeasesRevoked.get()).values[0]?.value ?? 0;

  it("revokes abandoned leases after they expire, never before", async () => {
    const client = etcdClient({ endpoints: etcd.endpoints });
    // Many at once: etcd's own sweep (every 500 ms) may beat the sweeper to some of them, on a loaded machine
    // to several (CI once saw it win all of five), not to all twenty.
    const runs = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const metrics = new Metrics("sweeper");
        const sweeper = new LeaseSweeper(client, silent, metrics);
        const lease = client.lease(2, { autoKeepAlive: false });
        const sentAt = Date.now();
        const id = await lease.grant();
        const key = `/sweep/${id}`;
        const watcher = await client.watch().key(key).create();
        const gone = once(watcher, "delete").then(() => Date.now());
        await lease.put(key).value("x").exec();
        sweeper.track(id);
        const goneAt = await gone;
        await watcher.cancel();
        sweeper.stop();
        return { sentAt, goneAt, revoked: await revokedByUs(metrics) };
      }),
    );
    assert.ok(
      runs.some((r) => r.revoked === 1),
      "the sweeper revoked at least one lease",
    );
    // A lease granted at sentAt expires no earlier than sentAt + TTL; its key cannot go before that.
    for (const r of runs)
      assert.ok(r.goneAt >= r.sentAt + 2000, `key gone ${r.goneAt - r.sentAt} ms after grant`);
    client.close();
  });

  it("a lease renewed in its last second, after etcd answered 0, is left alone", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "debug" }, { write: (l: string) => void lines.push(l) });
    const client = etcdClient({ endpoints: etcd.endpoints });
    const metrics = new Metrics("sweeper");
    const sweeper = new LeaseSweeper(client, logger, metrics);
    const lease = client.lease(2, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put("/sweep/late").value("x").exec();
    sweeper.track(id);
    // A renewal every 1.3 s of a 2 s lease: each time, under a second was left, which etcd reports as 0.
    for (let i = 0; i < 5; i++) {
      await sleep(1300);
      await lease.keepaliveOnce();
    }
    assert.ok(
      lines.some((l) => l.includes("renewed in its last second")),
      "the sweeper saw a 0 answer and then the renewal",
    );
    assert.equal(await client.get("/sweep/late").string(), "x");
    assert.equal(await revokedByUs(metrics), 0);
    sweeper.stop();
    await lease.revoke();
    client.close();
  });

  it("leaves a lease that is kept alive alone", async () => {
    const client = etcdClient({ endpoints: etcd.endpoints });
    const metrics = new Metrics("sweeper");
    const sweeper = new LeaseSweeper(client, silent, metrics);
    const lease = client.lease(2, { autoKeepAlive: false });
    const id = await lease.grant();
    await lease.put("/sweep/alive").value("x").exec();
    sweeper.track(id);
    // Keep it alive for three TTLs, the way a healthy primary does (every TTL/6).
    for (let i = 0; i < 18; i++) {
      await lease.keepaliveOnce();
      await new Promise((r) => setTimeout(r, 333));
    }
    assert.equal(await client.get("/sweep/alive").string(), "x");
    assert.equal(await revokedByUs(metrics), 0);
    sweeper.stop();
    await lease.revoke();
    client.close();
  });
});
