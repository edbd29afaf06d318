/**
 * The chaos suite: provisiond in containers, broken in each way ../shared/DESIGN.md's failure model names, while
 * the Okta simulator streams changes. After each scenario: the store equals the simulator's truth (nothing
 * lost), the audit history shows no event applied twice and no stale-term write landed, and at no moment did
 * two nodes say they were primary (/status and provisiond_leader, polled throughout). Writes
 * test/chaos/report.json and report.md.
 *
 * Needs a Docker engine and the images from deploy/images.sh (`npm run test:chaos` builds them first).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { assertHistory, readHistory } from "../support/history.js";
import { metricValue } from "../support/metrics.js";
import { diffWithTruth, waitFor } from "../support/okta-sim.js";
import { ROOT } from "../support/vectors.js";
import { type Node, sweep, Topology, TTL_MS } from "./topology.js";

interface Row {
  scenario: string;
  failoverMs: number | null;
  drainMs: number | null;
  lost: number | null;
  duplicates: number | null;
  stale: number | null;
  doublePrimary: number;
  /** Polls at which two nodes ran an agent (see watchPrimaries). */
  agentsAtOnce: number;
  note: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("chaos: provisiond in containers", { timeout: 20 * 60_000 }, () => {
  let t: Topology;
  const rows: Row[] = [];
  let streaming = true;
  /** Set while a scenario settles: convergence needs a moment in which the simulator stands still. */
  let quiet = false;
  let stream: Promise<void> = Promise.resolve();
  let monitoring = true;
  let monitor: Promise<void> = Promise.resolve();
  /** Moments at which two nodes said they were primary (by /status or by provisiond_leader). */
  const doubles: string[] = [];
  const agentOverlaps: string[] = [];

  /** A steady stream of Okta changes of every kind the agent follows, about ten a second. */
  async function streamChanges(): Promise<void> {
    const users: string[] = [];
    const groups: string[] = [];
    for (const name of ["Chaos A", "Chaos B"]) {
      const g = await t.control("POST", "/groups", { name });
      await t.control("POST", "/push", { groupId: g.id });
      groups.push(g.id);
    }
    let n = 0;
    while (streaming) {
      if (quiet) {
        await sleep(100);
        continue;
      }
      n++;
      const r = Math.random();
      try {
        if (users.length < 20 || r < 0.3) {
          const u = await t.control("POST", "/users", { login: `chaos${n}@example.com`, lastName: "L0" });
          await t.control("POST", "/assign", { userId: u.id });
          users.push(u.id);
        } else {
          const id = users[Math.floor(Math.random() * users.length)]!;
          if (r < 0.6) await t.control("POST", "/profile", { userId: id, profile: { lastName: `L${n}` } });
          else if (r < 0.7)
            await t.control("POST", "/profile", { userId: id, profile: { login: `re${n}@example.com` } });
          else if (r < 0.8)
            await t.control("POST", "/lifecycle", { userId: id, action: n % 2 ? "suspend" : "unsuspend" });
          else
            await t.control("POST", "/membership", {
              groupId: groups[n % 2],
              userId: id,
              add: Math.random() < 0.7,
            });
        }
      } catch {
        // A change the simulator refuses (suspending a suspended user, say) changes nothing: go on.
      }
      await sleep(100);
    }
  }

  /**
   * Polls both nodes' /status and provisiond_leader every 200 ms; records any moment at which two nodes said they
   * were primary (asserted), and, apart, any at which two ran an agent for a current term (reported: /status is
   * read from each node at a slightly different moment; an agent whose term has ended reports `stopping`).
   */
  async function watchPrimaries(): Promise<void> {
    while (monitoring) {
      const seen = await Promise.all(
        t.nodes.map(async (n) => {
          const s = await t.status(n);
          const leader = s ? metricValue(await t.metrics(n).catch(() => ""), "provisiond_leader") : 0;
          return {
            id: n.id,
            status: s?.role === "primary",
            leader: leader === 1,
            agent: s?.agent?.running === true,
            term: s?.term,
          };
        }),
      );
      for (const key of ["status", "leader", "agent"] as const) {
        const primaries = seen.filter((x) => x[key]);
        if (primaries.length > 1)
          (key === "agent" ? agentOverlaps : doubles).push(
            `${new Date().toISOString()} ${key}: ${primaries.map((p) => `${p.id}@${p.term}`).join(", ")}`,
          );
      }
      await sleep(200);
    }
  }

  /** The one node that is primary, and its term, once exactly one says so. */
  async function primary(): Promise<{ node: Node; term: number }> {
    let found: { node: Node; term: number } | undefined;
    await waitFor(
      "exactly one primary",
      async () => {
        const s = await Promise.all(t.nodes.map((n) => (n.running ? t.status(n) : undefined)));
        const ps = t.nodes.filter((_, i) => s[i]?.role === "primary" && s[i]?.agent?.running);
        if (ps.length !== 1) return false;
        found = { node: ps[0]!, term: Number(s[t.nodes.indexOf(ps[0]!)].term) };
        return true;
      },
      120_000,
    );
    return found!;
  }

  /** Waits until a term above `term` has applied an event (its cursor write), and says when, from `since`. */
  async function firstEventAbove(term: number, since: number): Promise<number> {
    await waitFor(
      `a term above ${term} to apply an event`,
      async () => {
        for (const n of t.nodes.filter((x) => x.running)) {
          const s = await t.status(n);
          if (s?.role === "primary" && Number(s.cursor?.term ?? 0) > term) return true;
        }
        return false;
      },
      120_000,
    );
    const ms = Date.now() - since;
    // A failover far beyond the TTL passes (nothing was lost) but needs a diagnosis: keep the nodes' own
    // account of it, their /status failovers (each leg timed) and their last log lines, in the test output.
    if (ms > 4 * TTL_MS)
      for (const n of t.nodes.filter((x) => x.running)) {
        const s = await t.status(n);
        process.stderr.write(
          `slow failover (${ms} ms): ${n.id} failovers ${JSON.stringify(s?.failovers?.slice(-2))}\n${await t.logs(n, 40).catch(() => "")}\n`,
        );
      }
    return ms;
  }

  async function nodeReady(n: Node): Promise<void> {
    await waitFor(`${n.id} to be ready`, async () => {
      try {
        return (await fetch(`http://${n.ip}:9464/readyz`, { signal: AbortSignal.timeout(1000) })).ok;
      } catch {
        return false;
      }
    });
  }

  /**
   * The end of every scenario: the store reaches the simulator's truth; the history and the primary watch hold.
   * `since`: when the fault was healed, for the drain time.
   */
  async function settle(row: Row, since: number, doublesBefore: number): Promise<void> {
    let diff: string[] = [];
    quiet = true;
    try {
      await waitFor(
        "the store to match the simulator",
        async () => {
          try {
            diff = await diffWithTruth((p) => t.scim(p), await t.truth());
          } catch {
            return false; // a node still coming back (503, no answer): not there yet
          }
          return diff.length === 0;
        },
        180_000,
      );
      row.drainMs = Date.now() - since;
    } finally {
      quiet = false;
      row.lost = diff.length;
      const h = await readHistory(t.query);
      row.duplicates = h.appliedTwice.length;
      row.stale = h.stale.length;
      row.doublePrimary = doubles.length - doublesBefore;
    }
    assert.deepEqual(diff, [], "the store differs from the simulator's truth");
    await assertHistory(t.query);
    assert.deepEqual(doubles.slice(doublesBefore), [], "two nodes said they were primary at once");
  }

  /** Runs one scenario with its report row; the stream keeps going underneath. */
  function scenario(name: string, body: (row: Row, doublesBefore: number) => Promise<void>) {
    // Each scenario has its own bound, so a stuck one fails alone and the suite's after() still cleans up.
    it(name, { timeout: 6 * 60_000 }, async () => {
      const row: Row = {
        scenario: name,
        failoverMs: null,
        drainMs: null,
        lost: null,
        duplicates: null,
        stale: null,
        doublePrimary: 0,
        agentsAtOnce: 0,
        note: "",
      };
      rows.push(row);
      const agentsBefore = agentOverlaps.length;
      try {
        await body(row, doubles.length);
      } catch (err) {
        for (const n of t.nodes) process.stderr.write(`--- ${n.id}\n${await t.logs(n).catch(() => "")}\n`);
        throw err;
      } finally {
        row.agentsAtOnce = agentOverlaps.length - agentsBefore;
      }
    });
  }

  before(async () => {
    await sweep();
    t = await Topology.start(`run-${process.pid}`);
    stream = streamChanges();
    monitor = watchPrimaries();
  });

  after(async () => {
    streaming = false;
    monitoring = false;
    await Promise.allSettled([stream, monitor]);
    await t?.stop();
    // Whatever a start that failed halfway left behind, by label.
    await sweep();
    const md = [
      "| scenario | failover (ms) | drain (ms) | lost | applied twice | stale writes | two primaries | two agents | note |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---|",
      ...rows.map(
        (r) =>
          `| ${r.scenario} | ${r.failoverMs ?? "–"} | ${r.drainMs ?? "–"} | ${r.lost ?? "–"} | ${r.duplicates ?? "–"} | ${r.stale ?? "–"} | ${r.doublePrimary} | ${r.agentsAtOnce} | ${r.note} |`,
      ),
    ].join("\n");
    writeFileSync(
      join(ROOT, "test/chaos/report.json"),
      `${JSON.stringify({ ttlMs: TTL_MS, rows }, null, 2)}\n`,
    );
    writeFileSync(join(ROOT, "test/chaos/report.md"), `${md}\n`);
    process.stdout.write(`\n${md}\n`);
  });

  scenario("1. SIGKILL the primary", async (row, d) => {
    const p = await primary();
    const at = Date.now();
    await t.kill(p.node);
    try {
      row.failoverMs = await firstEventAbove(p.term, at);
    } finally {
      await t.restart(p.node);
    }
    await nodeReady(p.node);
    await settle(row, at, d);
  });

  scenario("2. pause the primary past its TTL, then unpause it", async (row, d) => {
    const p = await primary();
    const before = metricValue(await t.metrics(p.node), "provisiond_fencing_rejections_total");
    const refusedMoves = async () =>
      ((await t.logs(p.node, 2000)).match(/cursor not advanced: this term is over/g) ?? []).length;
    const refusedBefore = await refusedMoves();
    const at = Date.now();
    await t.pause(p.node);
    try {
      row.failoverMs = await firstEventAbove(p.term, at);
    } finally {
      await t.unpause(p.node);
    }
    // The zombie wakes past its lease: it must come back as a standby, and whatever it still sent is fenced.
    await waitFor(
      "the old primary to be a standby",
      async () => (await t.status(p.node))?.role === "standby",
    );
    const fenced = metricValue(await t.metrics(p.node), "provisiond_fencing_rejections_total") - before;
    // What it tried on waking, from its own log: a cursor move refused by etcd's guard, a write refused by the fence.
    const refusedCursor = (await refusedMoves()) - refusedBefore;
    row.note = `zombie on waking: ${fenced} SCIM writes fenced, ${refusedCursor} cursor moves refused`;
    await settle(row, at, d);
  });

  scenario("3. disconnect the primary from the network, then reconnect it", async (row, d) => {
    const p = await primary();
    const at = Date.now();
    try {
      await t.disconnect(p.node, t.app);
      await t.disconnect(p.node, t.etcdNet);
      row.failoverMs = await firstEventAbove(p.term, at);
    } finally {
      await t.connect(p.node, t.app).catch(() => undefined);
      await t.connect(p.node, t.etcdNet).catch(() => undefined);
    }
    await waitFor(
      "the old primary to be a standby",
      async () => (await t.status(p.node))?.role === "standby",
    );
    await settle(row, at, d);
  });

  scenario("4. cut the primary off etcd only (MySQL still reachable)", async (row, d) => {
    const p = await primary();
    const demotionsBefore = metricValue(await t.metrics(p.node), "provisiond_self_demotions_total");
    const at = Date.now();
    try {
      await t.disconnect(p.node, t.etcdNet);
      // It still answers on the app network and still reaches MySQL: it must stop acting on its own.
      await waitFor("the cut-off primary's agent to stop", async () => {
        const a = (await t.status(p.node))?.agent;
        return a?.running === false && a.stopping === false;
      });
      row.failoverMs = await firstEventAbove(p.term, at);
      // ... and before the standby is elected: its own `since` (when it became standby) against the new
      // primary's (when it was elected). Both containers read the same host clock.
      const old = await t.status(p.node);
      const fresh = (await Promise.all(t.nodes.map((n) => t.status(n)))).find(
        (s) => s?.role === "primary" && Number(s.term) > p.term,
      );
      assert.ok(old && fresh, "both nodes answer");
      const margin = Date.parse(fresh.since) - Date.parse(old.since);
      assert.ok(margin > 0, `the cut-off primary stepped down ${-margin} ms after the standby was elected`);
      const demotions =
        metricValue(await t.metrics(p.node), "provisiond_self_demotions_total") - demotionsBefore;
      assert.equal(demotions, 1, "the cut-off primary demoted itself once");
      row.note = `stepped down ${margin} ms before the standby was elected`;
    } finally {
      await t.connect(p.node, t.etcdNet).catch(() => undefined);
    }
    await settle(row, at, d);
  });

  scenario("5. stop MariaDB for 30 s, then start it", async (row, d) => {
    const p = await primary();
    const at = Date.now();
    await t.stopMaria();
    let refused: string | null | undefined;
    let healed = at;
    let cursorBefore: string | undefined;
    try {
      // Each SCIM read fails on the store: enough of them open the breaker of the node that serves them.
      await waitFor("SCIM to answer 503 with Retry-After, and a breaker to open", async () => {
        const r = await t.scim("/Users?count=1");
        if (r.status === 503) refused = r.headers.get("retry-after");
        const s = await Promise.all(t.nodes.map((n) => t.status(n)));
        return refused !== undefined && s.some((x) => x?.breaker?.state === "open");
      });
      assert.match(refused ?? "", /^\d+$/);
      // Read once the store refuses, not before the stop: a batch whose writes all landed before it may still
      // publish its position on its way out (CI saw one, 106 ms of events, which is no loss).
      cursorBefore = (await t.status(p.node))?.cursor?.published;
      // The outage lasts 30 s, as the failure model says; the cursor must not move meanwhile.
      await sleep(Math.max(0, 30_000 - (Date.now() - at)));
      const cursorDuring = (await t.status(p.node))?.cursor?.published;
      assert.equal(cursorDuring, cursorBefore, "the cursor moved while the store was down");
    } finally {
      healed = Date.now();
      await t.startMaria();
      await waitFor("MariaDB to take connections again", () =>
        t.query("SELECT 1").then(
          () => true,
          () => false,
        ),
      );
    }
    row.note = `503 with Retry-After ${refused} s; breaker open; cursor held`;
    await settle(row, healed, d);
  });

  scenario("6. kill the etcd leader; then lose quorum and get it back", async (row, d) => {
    const p = await primary();
    const leader = await t.etcdLeader();
    const at = Date.now();
    await t.kill(leader);
    try {
      const published = (await t.status(p.node))?.cursor?.published;
      await waitFor("events to go on with a new etcd leader", async () => {
        for (const n of t.nodes) {
          const s = await t.status(n);
          if (s?.role === "primary" && s.cursor?.published !== published) return true;
        }
        return false;
      });
      row.failoverMs = Date.now() - at;
    } finally {
      await t.restart(leader);
    }
    // Quorum lost: two of three members down. No node may go on processing.
    const down = t.members.filter((m) => m.running).slice(0, 2);
    for (const m of down) await t.kill(m);
    let healed = Date.now();
    try {
      // Every node answers, and none is primary (a node that does not answer proves nothing).
      await waitFor("no primary without quorum", async () => {
        const s = await Promise.all(t.nodes.map((n) => t.status(n)));
        return s.every(
          (x) =>
            x !== undefined &&
            x.role !== "primary" &&
            x.agent?.running === false &&
            x.agent.stopping === false,
        );
      });
      const noPrimarySince = new Date().toISOString();
      // An absence is observed over a window, not awaited: two lease TTLs with the stream going on. A write
      // begun (audit `at`, taken when a request starts) after no node was primary is processing without quorum.
      await sleep(2 * TTL_MS);
      const late = await t.query<{ n: number }>(
        "SELECT COUNT(*) AS n FROM scim_audit WHERE fencing_token IS NOT NULL AND at > ?",
        [noPrimarySince],
      );
      assert.equal(Number(late[0]!.n), 0, "an agent began a write without etcd quorum");
    } finally {
      healed = Date.now();
      for (const m of down) await t.restart(m);
    }
    row.note = "no agent write without quorum";
    await settle(row, healed, d);
  });

  scenario("7. rolling restart (SIGTERM one node at a time, as kubectl rollout restart)", async (row, d) => {
    const at = Date.now();
    let failover: number | null = null;
    for (const n of [...t.nodes]) {
      const p = await primary();
      const wasPrimary = p.node === n;
      const stoppedAt = Date.now();
      try {
        await t.terminate(n);
        if (wasPrimary) failover = await firstEventAbove(p.term, stoppedAt);
      } finally {
        if (!n.running) await t.restart(n);
      }
      await nodeReady(n);
      // Ready is not enough before the next node goes: this one must be back in the election, seeing a leader.
      await waitFor(`${n.id} to rejoin the election`, async () => {
        const s = await t.status(n);
        return s?.role === "primary" || (s?.role === "standby" && typeof s.leaderId === "string");
      });
    }
    row.failoverMs = failover;
    row.note = "graceful handover (drain, resign) on the primary's SIGTERM";
    await settle(row, at, d);
  });
});
