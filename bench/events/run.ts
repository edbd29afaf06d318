/**
 * bench/events: N assignment events from the Okta simulator to MariaDB, end to end, through a two-node
 * cluster (the primary's agent and its connector). The simulator's rate limits are off. Prints events per
 * second and Okta API calls per applied event; asserts nothing.
 *
 * Then, at a smaller size, the same with /Bulk and with one request per write, side by side.
 *
 *   BENCH_EVENTS (default 100000); BENCH_COMPARE_EVENTS (default 10000, 0 skips the comparison)
 */
import { Cluster } from "../../test/support/cluster.js";
import { waitFor } from "../../test/support/okta-sim.js";
import { fmt } from "../lib.js";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const COMPARE = Number(process.env.BENCH_COMPARE_EVENTS ?? 10_000);

interface Run {
  events: number;
  seconds: number;
  fillSeconds: number;
  calls: number;
}

/** One end-to-end run on a fresh cluster; `bulkOperations` 0 makes the agent send one request per write. */
async function run(events: number, bulkOperations: number): Promise<Run> {
  const c = await Cluster.start({
    env: {
      PROVISIOND_LOG_LEVEL: "warn",
      PROVISIOND_AGENT_CONCURRENCY: "16",
      PROVISIOND_AGENT_BULK_OPERATIONS: String(bulkOperations),
    },
  });
  try {
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
    const before = (await c.sim.control("GET", "/stats")).apiCalls.total as number;
    const t0 = Date.now();
    await c.sim.control("POST", "/load", { users: events, prefix: "ev" });
    const created = Date.now();
    await waitFor(
      "every assignment applied",
      async () => {
        const n = (await c.query<{ n: number }>("SELECT COUNT(*) AS n FROM scim_users"))[0]!.n;
        return Number(n) >= events;
      },
      3_600_000,
    );
    const seconds = (Date.now() - t0) / 1000;
    const calls = ((await c.sim.control("GET", "/stats")).apiCalls.total as number) - before;
    return { events, seconds, fillSeconds: (created - t0) / 1000, calls };
  } finally {
    await c.destroy();
  }
}

const rate = (r: Run) => r.events / r.seconds;

async function main() {
  const big = await run(EVENTS, 500);
  console.log(
    `bench/events: ${EVENTS} assignment events (simulator filled its log in ${fmt(big.fillSeconds, 1)} s)`,
  );
  console.log(`  end to end ${fmt(big.seconds, 1)} s → ${fmt(rate(big), 0)} events/s`);
  console.log(`  Okta API calls ${big.calls} → ${fmt(big.calls / EVENTS, 4)} per applied event`);
  if (COMPARE > 0) {
    const bulk = await run(COMPARE, 500);
    const single = await run(COMPARE, 0);
    console.log(`  side by side at ${COMPARE} events, fresh cluster each:`);
    console.log(`    /Bulk (500 per request)   ${fmt(rate(bulk), 0)} events/s`);
    console.log(`    one request per write     ${fmt(rate(single), 0)} events/s`);
    console.log(`    ratio bulk / single       ${fmt(rate(bulk) / rate(single), 2)}`);
  }
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
