/**
 * A node's etcd client after a network cut: the first call once the cut heals must get through within a
 * keep-alive's deadline. With grpc-js' default channel options it did not (the new channel waited on the old
 * connection attempt's SYN retransmits), and a healthy standby sat out failovers. The cut is iptables DROP on
 * the member's client port, as a partition drops packets; it needs root, as CI has.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import type { Etcd3 } from "etcd3";
import { deadline, etcdClient } from "../../src/cluster/etcd.js";
import { EtcdCluster } from "../support/etcd.js";

const KEEPALIVE_DEADLINE_MS = 666; // the election's at a 2 s TTL
const CUT_MS = 10_000; // long enough for the kernel to back its SYN retransmits off past the deadline

/** Calls the way keep-alives do until `stop` is set; resolves once the last call in flight has ended. */
async function callUntil(c: Etcd3, stop: { now: boolean }): Promise<number> {
  let failures = 0;
  while (!stop.now) {
    await c
      .get("k")
      .options(deadline(KEEPALIVE_DEADLINE_MS))
      .catch(() => failures++);
    await new Promise((r) => setTimeout(r, 300));
  }
  return failures;
}

describe("etcd client reconnection", () => {
  let etcd: EtcdCluster;
  let rule: string[] | undefined;
  before(async () => {
    etcd = await EtcdCluster.start(1);
    rule = ["INPUT", "-p", "tcp", "--dport", etcd.endpoints[0]!.split(":")[1]!, "-j", "DROP"];
  });
  after(async () => {
    // The rule is on a port freePort() chose for this run; a run killed before this line leaves it behind.
    if (rule)
      try {
        execFileSync("iptables", ["-D", ...rule], { stdio: "ignore" });
      } catch {}
    await etcd?.destroy();
  });

  it("makes its first call after a 10 s cut heals within a keep-alive's deadline", async () => {
    const c = etcdClient({ endpoints: etcd.endpoints });
    const cut = rule!;
    try {
      await c.put("k").value("v");
      execFileSync("iptables", ["-I", ...cut]);
      const stop = { now: false };
      const calling = callUntil(c, stop);
      // The cut is the fault being injected, not something to await.
      await new Promise((r) => setTimeout(r, CUT_MS));
      stop.now = true;
      assert.ok((await calling) > 0, "the cut did not cut: no call failed during it");
      execFileSync("iptables", ["-D", ...cut]);
      assert.equal(await c.get("k").options(deadline(KEEPALIVE_DEADLINE_MS)).string(), "v");
    } finally {
      c.close();
    }
  });
});
