/**
 * bench/failover: repeated SIGKILL failovers at two lease TTLs, and SIGTERM handovers, on a two-node cluster of
 * real processes (etcd, MariaDB, the Okta simulator streaming 50 events/s). Prints p50/p99 and their ratio to
 * the TTL; asserts nothing.
 *
 *   BENCH_FAILOVERS (default 20) per TTL; BENCH_TTLS (default 2000,5000); BENCH_HANDOVERS (default 20)
 */
import { Cluster, type NodeProc } from "../../test/support/cluster.js";
import { waitFor } from "../../test/support/okta-sim.js";
import { fmt, percentile } from "../lib.js";

const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 20);
const HANDOVERS = Number(process.env.BENCH_HANDOVERS ?? 20);
const TTLS = (process.env.BENCH_TTLS ?? "2000,5000").split(",").map(Number);

/** The parts of a /status failover record the bench reads (src/cluster/election.ts, Failover). */
interface Failover {
  at: string;
  keyGoneAt: string | null;
  firstEventAt: string | null;
}

/** ms from the signal: to the old key's disappearance, to the new primary's election, to its first event. */
interface Timing {
  gone: number;
  elected: number;
  firstEvent: number;
}

/** Kills (or stops) the primary and times the failover from the signal. */
async function once(c: Cluster, signal: "SIGKILL" | "SIGTERM"): Promise<Timing> {
  let old: NodeProc | undefined;
  await waitFor("a processing primary", async () => {
    old = await c.primary();
    return old !== undefined && (await c.status(old)).cursor !== null;
  });
  const t0 = Date.now();
  await c.kill(old!, signal);
  let f: Failover | undefined;
  try {
    await waitFor(
      "the new primary's first event",
      async () => {
        const p = await c.primary();
        if (!p || p === old) return false;
        f = (await c.status(p)).failovers[0] as Failover;
        return Date.parse(f.at) >= t0 && f.firstEventAt !== null && f.keyGoneAt !== null;
      },
      60_000,
    );
  } catch (err) {
    // Say why: the surviving nodes' last log lines.
    for (const n of c.alive())
      console.error(`--- ${n.id}\n${n.log.join("").split("\n").slice(-40).join("\n")}`);
    throw err;
  }
  await c.startNode(old!);
  return {
    gone: Date.parse(f!.keyGoneAt!) - t0,
    elected: Date.parse(f!.at) - t0,
    firstEvent: Date.parse(f!.firstEventAt!) - t0,
  };
}

/** p50 and p99 of each leg: signal → key gone, key gone → elected, elected → first event. */
function legs(runs: Timing[]): string {
  const leg = (name: string, xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return `${name} p50 ${fmt(percentile(sorted, 50), 0)} / p99 ${fmt(percentile(sorted, 99), 0)} ms`;
  };
  return [
    leg(
      "signal → key gone",
      runs.map((r) => r.gone),
    ),
    leg(
      "gone → elected",
      runs.map((r) => r.elected - r.gone),
    ),
    leg(
      "elected → first event",
      runs.map((r) => r.firstEvent - r.elected),
    ),
  ].join("; ");
}

async function main() {
  const rows: string[] = [];
  for (const ttl of TTLS) {
    const first = rows.length;
    const c = await Cluster.start({ ttlMs: ttl, env: { PROVISIOND_LOG_LEVEL: "warn" } });
    try {
      await c.sim.control("POST", "/load", { users: 100_000, perSecond: 50, prefix: `f${ttl}-` });
      const runs: Timing[] = [];
      for (let i = 0; i < FAILOVERS; i++) runs.push(await once(c, "SIGKILL"));
      const kills = runs.map((r) => r.firstEvent).sort((a, b) => a - b);
      const p50 = percentile(kills, 50);
      const p99 = percentile(kills, 99);
      rows.push(
        `SIGKILL, TTL ${ttl} ms, ${FAILOVERS} runs: kill → first event p50 ${fmt(p50, 0)} ms, p99 ${fmt(p99, 0)} ms; p50/TTL ${fmt(p50 / ttl, 2)}, p99/TTL ${fmt(p99 / ttl, 2)}; p99 − TTL ${fmt(p99 - ttl, 0)} ms`,
        `  legs: ${legs(runs)}`,
      );
      if (ttl === TTLS[0] && HANDOVERS > 0) {
        const handRuns: Timing[] = [];
        for (let i = 0; i < HANDOVERS; i++) handRuns.push(await once(c, "SIGTERM"));
        const hand = handRuns.map((r) => r.firstEvent).sort((a, b) => a - b);
        rows.push(
          `SIGTERM handover, ${HANDOVERS} runs: signal → first event p50 ${fmt(percentile(hand, 50), 0)} ms, p99 ${fmt(percentile(hand, 99), 0)} ms`,
          `  legs: ${legs(handRuns)}`,
        );
      }
    } finally {
      await c.destroy();
    }
    console.log(rows.slice(first).join("\n"));
  }
  console.log("\nbench/failover (two nodes, etcd 3.4, MariaDB, okta-sim at 50 events/s)");
  for (const r of rows) console.log(r);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
