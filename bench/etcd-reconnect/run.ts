/**
 * bench/etcd-reconnect: how long after a network cut heals an etcd client makes its first call, side by side:
 * etcd3 with grpc-js' default channel options, and provisiond's etcdClient(). The cut drops every packet to
 * the member's client port (iptables, so run as root), as a partition does; calls go on meanwhile, as the
 * election's keep-alives do. Prints each cut and the medians; asserts nothing.
 *
 *   BENCH_CUTS (default 3); BENCH_CUT_MS (default 30000)
 */
import { execFileSync } from "node:child_process";
import { noop } from "cockatiel";
import { Etcd3 } from "etcd3";
import { deadline, etcdClient } from "../../src/cluster/etcd.js";
import { EtcdCluster } from "../../test/support/etcd.js";
import { fmt, percentile } from "../lib.js";

const CUTS = Number(process.env.BENCH_CUTS ?? 3);
const CUT_MS = Number(process.env.BENCH_CUT_MS ?? 30_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const etcd = await EtcdCluster.start(1);
const endpoint = etcd.endpoints[0]!;
const port = endpoint.split(":")[1]!;
const rule = ["INPUT", "-p", "tcp", "--dport", port, "-j", "DROP"];
const clients: Record<string, Etcd3> = {
  "grpc-js defaults": new Etcd3({ hosts: [endpoint], faultHandling: { host: () => noop, global: noop } }),
  "etcdClient()": etcdClient({ endpoints: [endpoint] }),
};
const figures: Record<string, number[]> = Object.fromEntries(Object.keys(clients).map((k) => [k, []]));

/** Calls every 300 ms with a 666 ms deadline (a keep-alive's cadence at a 2 s TTL); resolves at the first
 *  success after `healedAt()` is set, with the ms since. */
async function firstSuccess(c: Etcd3, healedAt: () => number): Promise<number> {
  for (;;) {
    const ok = await c
      .get("bench")
      .options(deadline(666))
      .then(
        () => true,
        () => false,
      );
    const healed = healedAt();
    if (ok && healed) return Date.now() - healed;
    await sleep(300);
  }
}

try {
  for (const c of Object.values(clients)) await c.put("bench").value("x");
  for (let i = 0; i < CUTS; i++) {
    execFileSync("iptables", ["-I", ...rule]);
    let healed = 0;
    const waits = Object.entries(clients).map(async ([name, c]) => {
      const ms = await firstSuccess(c, () => healed);
      figures[name]!.push(ms);
      return `${name} ${fmt(ms)} ms`;
    });
    await sleep(CUT_MS);
    execFileSync("iptables", ["-D", ...rule]);
    healed = Date.now();
    console.log(`cut ${i + 1} (${CUT_MS / 1000} s): ${(await Promise.all(waits)).join(", ")}`);
  }
  console.log("\nfirst call after the cut healed (ms)\n| client | p50 | max |\n|---|---:|---:|");
  for (const [name, ms] of Object.entries(figures)) {
    const s = [...ms].sort((a, b) => a - b);
    console.log(`| ${name} | ${fmt(percentile(s, 50))} | ${fmt(s.at(-1)!)} |`);
  }
} finally {
  try {
    execFileSync("iptables", ["-D", ...rule], { stdio: "ignore" });
  } catch {}
  for (const c of Object.values(clients)) c.close();
  await etcd.destroy();
}
