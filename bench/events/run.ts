/**
 * bench/events: N assignment events from the Okta simulator to MariaDB, end to end, through a two-node
 * cluster (the primary's agent and its connector). The simulator's rate limits are off. Prints events per
 * second and Okta API calls per applied event; asserts nothing.
 *
 *   BENCH_EVENTS (default 100000)
 */
import { Cluster } from "../../test/support/cluster.js";
import { waitFor } from "../../test/support/okta-sim.js";
import { fmt } from "../lib.js";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);

async function main() {
  const c = await Cluster.start({
    env: { PROVISIOND_LOG_LEVEL: "warn", PROVISIOND_AGENT_CONCURRENCY: "16" },
  });
  try {
    await waitFor("a primary", async () => (await c.primary()) !== undefined);
    const before = (await c.sim.control("GET", "/stats")).apiCalls.total as number;
    const t0 = Date.now();
    await c.sim.control("POST", "/load", { users: EVENTS, prefix: "ev" });
    const created = Date.now();
    let count = 0;
    await waitFor(
      "every assignment applied",
      async () => {
        count = (await c.query<{ n: number }>("SELECT COUNT(*) AS n FROM scim_users"))[0]!.n;
        return Number(count) >= EVENTS;
      },
      3_600_000,
    );
    const seconds = (Date.now() - t0) / 1000;
    const calls = ((await c.sim.control("GET", "/stats")).apiCalls.total as number) - before;
    console.log(
      `bench/events: ${EVENTS} assignment events (simulator filled its log in ${fmt((created - t0) / 1000, 1)} s)`,
    );
    console.log(`  end to end ${fmt(seconds, 1)} s → ${fmt(EVENTS / seconds, 0)} events/s`);
    console.log(`  Okta API calls ${calls} → ${fmt(calls / EVENTS, 4)} per applied event`);
  } finally {
    await c.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
