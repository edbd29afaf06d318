/**
 * bench/soak: the cluster under a nemesis. Two nodes on a 3-member etcd and MariaDB, all real processes,
 * while the Okta simulator streams changes (assignments, profile and username changes, unassignments,
 * suspensions, group memberships) at a steady rate. Every few seconds the nemesis picks one fault: SIGKILL,
 * SIGSTOP past the TTL then SIGCONT, or SIGTERM of the primary; SIGKILL of an etcd member; a short MariaDB
 * stop. Afterwards it heals everything, waits for the store to converge, runs the history checker, and
 * compares the store with the simulator's truth.
 *
 *   npm run soak                      10 minutes
 *   npm run soak -- --minutes 2       what CI runs
 *   SOAK_SEED=n                       the nemesis's choices (default: random, printed)
 *
 * Prints faults, events, lost, duplicated, stale and the failover p50/p99; exits 1 if anything was lost,
 * applied twice or written stale.
 */
import { parseArgs } from "node:util";
import { etcdClient } from "../../src/cluster/etcd.js";
import { Cluster, type NodeProc } from "../../test/support/cluster.js";
import { readHistory } from "../../test/support/history.js";
import { diffWithTruth, type Truth, waitFor } from "../../test/support/okta-sim.js";
import { fmt, percentile } from "../lib.js";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" } } });
const MINUTES = Number(values.minutes);
const TTL = 2000;
const EVENTS_PER_SECOND = 20;
let seed = Number(process.env.SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
const firstSeed = seed;
/** A small deterministic generator (mulberry32), so a seed replays the same choices. */
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const c = await Cluster.start({
  ttlMs: TTL,
  etcdMembers: 3,
  env: { PROVISIOND_LOG_LEVEL: "warn", PROVISIOND_AGENT_POLL_MS: "100" },
});
const org = c.sim.sim.org;
const etcd = etcdClient({ endpoints: c.etcd.endpoints });
console.log(`soak: ${MINUTES} min, seed ${firstSeed}, TTL ${TTL} ms, ${EVENTS_PER_SECOND} changes/s`);

// The stream: Okta changes of every kind the agent follows.
const groups = [org.createGroup("Soak A"), org.createGroup("Soak B")];
for (const g of groups) org.push(g.id);
const users: string[] = [];
let changes = 0;
const change = () => {
  changes++;
  const r = random();
  if (users.length < 20 || r < 0.35) {
    const u = org.createUser({ login: `soak${users.length}@example.com`, lastName: "L0" });
    users.push(u.id);
    org.assign(u.id);
    return;
  }
  const id = pick(users);
  const u = org.users.get(id)!;
  if (r < 0.6) org.updateProfile(id, { lastName: `L${changes}` });
  else if (r < 0.65) org.updateProfile(id, { login: `renamed${changes}@example.com` });
  else if (r < 0.72) {
    if (org.appUsers.has(id)) org.unassign(id);
    else org.assign(id);
  } else if (r < 0.78) org.lifecycle(id, u.status === "SUSPENDED" ? "unsuspend" : "suspend");
  else org.membership(pick(groups).id, id, random() < 0.7);
};
const stream = setInterval(change, 1000 / EVENTS_PER_SECOND);

/** The time of the first cursor advance by a term above `term`: the new primary's first applied event. */
function firstEventAbove(term: number): Promise<number> {
  return new Promise((resolve) => {
    void etcd
      .watch()
      .key("/provisiond/default/cursor")
      .create()
      .then((w) => {
        w.on("put", (kv) => {
          if (Number(JSON.parse(kv.value.toString()).term ?? 0) > term) {
            resolve(Date.now());
            void w.cancel();
          }
        });
      });
  });
}

async function primary(): Promise<{ node: NodeProc; term: number }> {
  let found: { node: NodeProc; term: number } | undefined;
  await waitFor(
    "a primary",
    async () => {
      const p = await c.primary();
      if (!p) return false;
      found = { node: p, term: Number((await c.status(p)).term) };
      return true;
    },
    120_000,
  );
  return found!;
}

const faults: Record<string, number> = {};
const failovers: number[] = [];
const FAULTS = [
  "SIGKILL primary",
  "SIGSTOP primary",
  "SIGTERM primary",
  "SIGKILL etcd member",
  "MariaDB stop",
];

async function nemesis(kind: string): Promise<void> {
  faults[kind] = (faults[kind] ?? 0) + 1;
  if (kind === "SIGKILL etcd member") {
    const i = between(0, 3);
    await c.etcd.stopMember(i, "SIGKILL");
    await sleep(between(1000, 4000));
    await c.etcd.restartAll();
    return;
  }
  if (kind === "MariaDB stop") {
    await c.maria.stop();
    await sleep(between(1000, 3000));
    await c.maria.restart();
    return;
  }
  const { node, term } = await primary();
  const next = firstEventAbove(term);
  const t0 = Date.now();
  if (kind === "SIGSTOP primary") {
    await c.kill(node, "SIGSTOP");
    await sleep(TTL + between(500, 2000));
    await c.kill(node, "SIGCONT");
  } else {
    await c.kill(node, kind === "SIGKILL primary" ? "SIGKILL" : "SIGTERM");
  }
  failovers.push((await next) - t0);
  if (kind !== "SIGSTOP primary") await c.startNode(node);
}

const end = Date.now() + MINUTES * 60_000;
let exitCode = 0;
try {
  await primary();
  while (Date.now() < end) {
    await sleep(between(3000, 8000));
    if (Date.now() >= end) break;
    await nemesis(pick(FAULTS));
  }
  clearInterval(stream);
  // Heal: every node up, etcd and MariaDB whole.
  for (const n of c.nodes) if (n.proc) n.proc.kill("SIGCONT");
  await c.etcd.restartAll();
  for (const n of c.nodes) if (!c.alive().includes(n)) await c.startNode(n);
  let diff: string[] = [];
  await waitFor(
    "the store to match the simulator",
    async () => {
      diff = await diffWithTruth((p) => c.scim(p), (await c.sim.control("GET", "/truth")) as Truth);
      return diff.length === 0;
    },
    180_000,
  ).catch(() => undefined);
  const h = await readHistory(c.query);
  const followed = org.events.filter((e) => !e.eventType.startsWith("user.lifecycle.create")).length;
  const sorted = [...failovers].sort((a, b) => a - b);
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  console.log(
    `faults injected: ${total} (${Object.entries(faults)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")})`,
  );
  console.log(
    `events: ${followed} followed Okta events (${changes} changes), ${h.agentWrites} agent writes in ${h.terms.length} terms`,
  );
  console.log(`lost: ${diff.length}${diff.length ? ` (e.g. ${diff.slice(0, 3).join("; ")})` : ""}`);
  console.log(
    `duplicated: ${h.appliedTwice.length}${h.appliedTwice.length ? ` (e.g. ${JSON.stringify(h.appliedTwice.slice(0, 3))})` : ""}`,
  );
  console.log(
    `stale: ${h.stale.length}${h.stale.length ? ` (e.g. ${JSON.stringify(h.stale.slice(0, 3))})` : ""}`,
  );
  console.log(
    `failover (fault → new primary's first event), ${sorted.length} runs: p50 ${fmt(percentile(sorted, 50), 0)} ms, p99 ${fmt(percentile(sorted, 99), 0)} ms`,
  );
  const dead = (await c.status(c.alive()[0]!)).deadLetters;
  console.log(
    `dead letters: ${dead.total}${dead.total ? ` (e.g. ${JSON.stringify(dead.items.slice(0, 3))})` : ""}`,
  );
  if (diff.length) {
    // What the store did with the first user that differs, for a diagnosis.
    const ext = /user (\S+):/.exec(diff[0]!)?.[1];
    const rows = ext
      ? await c.query(
          "SELECT a.seq, a.at, a.action, a.attributes, a.idempotency_key, a.fencing_token FROM scim_audit a JOIN scim_users u ON u.id = a.resource_id WHERE u.external_id = ? ORDER BY a.seq",
          [ext],
        )
      : [];
    console.log(`history of ${ext}: ${JSON.stringify(rows)}`);
    console.log(
      `Okta's log about it: ${JSON.stringify(org.events.filter((e) => e.target.some((t) => t.id === ext)).map((e) => [e.published, e.eventType, e.uuid]))}`,
    );
  }
  if (diff.length || h.appliedTwice.length || h.stale.length) exitCode = 1;
} catch (err) {
  console.error(err);
  for (const n of c.nodes) console.error(`--- ${n.id}\n${n.log.join("").split("\n").slice(-30).join("\n")}`);
  exitCode = 1;
} finally {
  clearInterval(stream);
  etcd.close();
  await c.destroy();
}
process.exit(exitCode);
