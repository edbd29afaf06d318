/**
 * `cluster.sh demo`, once the cluster is up: stream events into the simulator, kill -9 the primary while they
 * flow, print the failover's timeline, check the app store against the simulator's truth and the audit trail
 * (nothing lost, nothing applied twice, no stale write), then restart the killed node and watch it rejoin as
 * standby. Exits 0 when the verdict is good, 1 otherwise. cluster.sh passes everything in DEMO_*.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import mysql from "mysql2/promise";
import { diffWithTruth, type Truth } from "../../src/okta-sim/truth-diff.js";
import { readHistory } from "../../test/support/history.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`demo.ts: ${name} is not set (run it through deploy/local/cluster.sh demo)`);
  return v;
};
const simUrl = env("DEMO_SIM_URL");
const simToken = env("DEMO_SIM_TOKEN");
const scimToken = env("DEMO_SCIM_TOKEN");
const adminPorts = env("DEMO_ADMIN_PORTS").split(",");
const scimPorts = env("DEMO_SCIM_PORTS").split(",");
const dir = env("DEMO_DIR");
const script = env("DEMO_SCRIPT");
const storeUrl = process.env.DEMO_STORE_URL;

// biome-ignore lint/suspicious/noExplicitAny: /status and the simulator answer JSON read field by field here
type Json = any;

async function sim(method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`${simUrl}/sim${path}`, {
    method,
    headers: { authorization: `SSWS ${simToken}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`${method} /sim${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function status(n: number): Promise<Json | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPorts[n - 1]}/status`, {
      signal: AbortSignal.timeout(2000),
    });
    return res.ok ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `check` until it returns a value; past `seconds`, fails saying what it waited for. */
async function until<T>(
  what: string,
  seconds: number,
  check: () => Promise<T | undefined | false>,
): Promise<T> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(50);
  }
}

async function primary(): Promise<number | undefined> {
  for (const n of [1, 2]) if ((await status(n))?.role === "primary") return n;
  return undefined;
}

const clock = (iso: string | null | undefined) => (iso ? iso.slice(11, 23) : "—");

async function main(): Promise<number> {
  const old = await until("a primary", 30, primary);
  const next = old === 1 ? 2 : 1;
  const prefix = `demo${Date.now().toString(36)}-`;
  const load = { users: 400, updates: 400, perSecond: 200, prefix };
  await sim("POST", "/load", load);
  console.log(
    `  loading ${load.users} users and ${load.updates} updates at ${load.perSecond}/s (prefix ${prefix})`,
  );
  // Kill while events still stream, once the primary has applied some: the new term then has a backlog.
  await until("the primary to apply events", 30, async () => {
    const [s, l] = await Promise.all([status(old), sim("GET", "/load")]);
    return s?.cursor?.published && l.done >= l.requested / 4 && l.done < l.requested;
  });
  const pid = Number(readFileSync(`${dir}/node${old}.pid`, "utf8"));
  const signalAt = Date.now();
  process.kill(pid, "SIGKILL");
  console.log(`  kill -9 node-${old} (pid ${pid}), the primary`);

  const f: Json = await until(`node-${next} to take over and apply an event`, 60, async () => {
    const s = await status(next);
    const rec = s?.failovers?.[0];
    return rec && Date.parse(rec.at) >= signalAt && rec.firstEventAt ? rec : undefined;
  });
  const finishedAt: string = await until(
    "the load to finish",
    60,
    async () => (await sim("GET", "/load")).finishedAt ?? undefined,
  );
  // Drained: every event published before the load's last one is applied (the agent's appliedThrough passed it).
  const drained = await until("the backlog to drain", 120, async () => {
    const s = await status(next);
    const through = s?.agent?.appliedThrough;
    return through && Date.parse(through) > Date.parse(finishedAt) ? new Date().toISOString() : undefined;
  });

  const since = (iso: string | null) =>
    iso ? `${String(Date.parse(iso) - signalAt).padStart(6)} ms` : "     —   ";
  const signalIso = new Date(signalAt).toISOString();
  console.log(`\nTimeline (ms after the signal; the new primary's /status, failovers[0]):`);
  const rows: [string, string | null, string][] = [
    ["kill -9 sent", signalIso, `node-${old}`],
    ["last keepalive", f.lastKeepaliveAt, `node-${old}'s last one etcd acknowledged (read off its lease)`],
    ["key gone", f.keyGoneAt, `its lease ran out after ${f.legsMs.lastKeepaliveToKeyGone ?? "?"} ms`],
    ["elected", f.at, `node-${next}, term ${f.term}, ${f.legsMs.keyGoneToElected} ms after the key went`],
    ["first event", f.firstEventAt, `${f.legsMs.electedToFirstEvent} ms after the election`],
    ["backlog drained", drained, "everything the load published is applied (seen by polling /status)"],
  ];
  for (const [what, at, note] of rows)
    console.log(`  ${since(at)}  ${clock(at)}  ${what.padEnd(16)} ${note}`);
  console.log(`  provisioning stood still for ${f.totalMs} ms (last keepalive → first event)`);

  // The verdict: the app store against the simulator's truth, and the audit trail's history.
  const truth = (await sim("GET", "/truth")) as Truth;
  const base = `http://127.0.0.1:${scimPorts[next - 1]}/scim/v2`;
  const diffs = await diffWithTruth(async (path) => {
    const res = await fetch(`${base}${path}`, {
      headers: { authorization: `Bearer ${scimToken}` },
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: await res.json() };
  }, truth);
  const s = await status(next);
  let historyLine = "audit trail not checked (no DEMO_STORE_URL)";
  let historyOk = true;
  if (storeUrl) {
    const db = await mysql.createConnection(storeUrl);
    try {
      const h = await readHistory(async (sql, params) => (await db.query(sql, params))[0] as never);
      historyOk = h.appliedTwice.length === 0 && h.stale.length === 0;
      historyLine = `${h.agentWrites} agent writes: ${h.appliedTwice.length} applied twice, ${h.stale.length} stale (older term after newer), terms ${h.terms.join(" → ")}`;
    } finally {
      await db.end();
    }
  }
  const mine = truth.users.filter((u) => u.userName.startsWith(prefix)).length;
  const ok = diffs.length === 0 && historyOk && s?.deadLetters?.total === 0;
  console.log(`\nVerdict: ${ok ? "OK" : "FAILED"}`);
  console.log(
    `  app store vs simulator: ${diffs.length} differences over ${truth.users.length} users (${mine} from this load)`,
  );
  for (const d of diffs.slice(0, 10)) console.log(`    ${d}`);
  console.log(`  ${historyLine}`);
  console.log(`  dead letters: ${s?.deadLetters?.total ?? "unknown"}`);

  console.log(`\nRestarting node-${old}:`);
  const r = spawnSync("bash", [script, "restart-node", String(old)], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`cluster.sh restart-node ${old} exited ${r.status}`);
  await until(`node-${old} to rejoin as standby`, 30, async () => {
    const [a, b] = await Promise.all([status(old), status(next)]);
    return (
      a?.role === "standby" &&
      b?.role === "primary" &&
      b.members?.some((m: Json) => m.nodeId === `node-${old}` && m.role === "standby")
    );
  });
  console.log(`  node-${old} is in line as standby behind node-${next}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`demo: ${err.message}`);
    process.exit(1);
  },
);
