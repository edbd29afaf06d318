/**
 * The Grafana dashboards against a real Prometheus: Debian's prometheus scrapes a two-node cluster every second
 * with the target labels Kubernetes' ServiceMonitor would add, the primary is SIGKILLed while events stream,
 * and once Prometheus has scraped past the failover every PromQL expression in the dashboard JSON (panels and
 * variables, with Grafana's variables substituted) must return data. A metric renamed in the code, a label
 * the queries expect but nothing exports, a series that only appears after some rare event: each fails here
 * with the expression named.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type DashboardJson,
  type Expression,
  interpolate,
  labelValuesQuery,
  panelExpressions,
  variableExpressions,
} from "../../grafana/src/expressions.js";
import { Cluster, type NodeProc } from "../support/cluster.js";
import { freePort } from "../support/mariadb.js";
import { waitFor } from "../support/okta-sim.js";
import { stopChild } from "../support/process.js";
import { ROOT } from "../support/vectors.js";

const NAMESPACE = "provisiond-dash";
const CLUSTER = "ci";
const DASHBOARD = JSON.parse(
  readFileSync(join(ROOT, "grafana/dashboards/provisiond-cluster.json"), "utf8"),
) as DashboardJson;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

type Answer = { ok: true; result: Sample[] } | { ok: false; error: string };

/** A throwaway Prometheus server; ready when it logs so, stopped with SIGKILL if SIGTERM is not enough. */
class Prometheus {
  private constructor(
    readonly url: string,
    private readonly dir: string,
    private readonly proc: ChildProcess,
    /** Unix seconds, for the label-values time range. */
    readonly startedAt: number,
  ) {}

  static async start(targets: { address: string; labels: Record<string, string> }[]): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), "provisiond-prometheus-"));
    try {
      // JSON is YAML. A 1 s scrape so the test waits seconds, not minutes; the timeout may not exceed it.
      const config = {
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        scrape_configs: [
          {
            job_name: "provisiond",
            static_configs: targets.map((t) => ({ targets: [t.address], labels: t.labels })),
          },
        ],
      };
      writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config));
      const port = await freePort();
      const proc = spawn(
        "prometheus",
        [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=info",
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      await new Promise<void>((resolve, reject) => {
        let log = "";
        const onData = (c: Buffer) => {
          log += c.toString();
          if (log.includes("Server is ready to receive web requests")) {
            proc.stderr!.off("data", onData);
            proc.stderr!.resume();
            proc.off("exit", onExit);
            resolve();
          }
        };
        const onExit = (code: number | null) =>
          reject(new Error(`prometheus exited (${code}):\n${log.slice(-2000)}`));
        proc.stderr!.on("data", onData);
        proc.once("exit", onExit);
        proc.once("error", reject);
      });
      return new Prometheus(`http://127.0.0.1:${port}`, dir, proc, Date.now() / 1000);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** An instant query at `time` (Unix seconds; now by default). */
  async query(expr: string, time?: number): Promise<Answer> {
    const form = new URLSearchParams({ query: expr, ...(time !== undefined ? { time: String(time) } : {}) });
    const res = await fetch(`${this.url}/api/v1/query`, { method: "POST", body: form });
    const body = (await res.json()) as { status: string; error?: string; data?: { result: Sample[] } };
    return body.status === "success"
      ? { ok: true, result: body.data!.result }
      : { ok: false, error: body.error! };
  }

  async labelValues(label: string, match: string, start: number, end: number): Promise<string[]> {
    const q = new URLSearchParams({ start: String(start), end: String(end) });
    if (match) q.set("match[]", match);
    const res = await fetch(`${this.url}/api/v1/label/${label}/values?${q}`);
    const body = (await res.json()) as { status: string; error?: string; data?: string[] };
    if (body.status !== "success") throw new Error(`label values of ${label} for ${match}: ${body.error}`);
    return body.data!;
  }

  /** Waits until Prometheus answers `expr` with at least one sample (something it has scraped), and returns them. */
  async seen(what: string, expr: string): Promise<Sample[]> {
    let result: Sample[] = [];
    await waitFor(`Prometheus to see ${what} (${expr})`, async () => {
      const a = await this.query(expr);
      if (!a.ok) throw new Error(`${expr}: ${a.error}`);
      result = a.result;
      return result.length > 0;
    });
    return result;
  }

  async stop(): Promise<void> {
    await stopChild(this.proc, "SIGTERM", 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const eventRate = (n: NodeProc) => `rate(provisiond_events_processed_total{pod="${n.id}"}[1m])`;

/** What is wrong with `expr`'s answer, if anything: an error, no series, or only NaN (no observations). */
function problem(e: Expression, expr: string, a: Answer): string | undefined {
  if (!a.ok) return `${e.where}: ${expr} → error ${a.error}`;
  if (a.result.length === 0) return `${e.where}: ${expr} → no data`;
  if (a.result.every((s) => Number.isNaN(Number(s.value[1])))) return `${e.where}: ${expr} → only NaN`;
  return undefined;
}

describe("the Grafana dashboards against a real Prometheus", { timeout: 600_000 }, () => {
  let c: Cluster | undefined;
  let prom: Prometheus | undefined;

  before(async () => {
    c = await Cluster.start({ ttlMs: 2000 });
    prom = await Prometheus.start(
      c.nodes.map((n) => ({
        address: `127.0.0.1:${n.adminPort}`,
        // As a ServiceMonitor scrape would label them (the pod's name is its node id), plus a cluster label.
        labels: { namespace: NAMESPACE, cluster: CLUSTER, pod: n.id },
      })),
    );
  });
  after(async () => {
    await prom?.stop();
    await c?.destroy();
  });

  it("every expression returns data after a SIGKILL failover, and the failover shows", async () => {
    const cl = c!;
    const p = prom!;
    await cl.sim.control("POST", "/load", { users: 300, updates: 300, perSecond: 30, prefix: "dash" });
    let old: NodeProc | undefined;
    await waitFor("a primary", async () => {
      old = await cl.primary();
      return old !== undefined;
    });
    const standby = cl.nodes.find((n) => n !== old)!;
    // A rate needs two scrapes of a series: scraped once, it is not on a panel yet.
    await p.seen("the primary applying events", `sum(${eventRate(old!)}) > 0`);
    const transitions = `provisiond_leader_transitions_total{pod="${standby.id}", to="primary"}`;
    await p.seen("the standby's transitions counter", transitions);
    const beforeKill = Date.now() / 1000;
    const transitionsBefore = await p.query(transitions, beforeKill);

    await cl.kill(old!, "SIGKILL");
    await waitFor("the standby to take over", async () => (await cl.primary()) === standby);
    await cl.sim.control("POST", "/load", { users: 50, updates: 50, perSecond: 25, prefix: "dash-after" });
    await p.seen("the killed primary's scrape failing", `up{pod="${old!.id}"} == 0`);
    await p.seen(
      "the failover's duration",
      `provisiond_failover_duration_seconds_count{pod="${standby.id}"} > 0`,
    );
    await p.seen("the new primary applying events", `sum(${eventRate(standby)}) > 0`);
    // Everything is evaluated at the scrape that shows the standby leading: fixed, so a later re-election on a
    // slow machine cannot change what the panels are asked.
    const [leading] = await p.seen("the new primary", `provisiond_leader{pod="${standby.id}"} == 1`);
    const at = leading!.value[0];
    // Wider than Grafana's usual $__rate_interval (≥ 4 scrapes) on purpose: the whole run, so that rare events
    // (the one failover) are inside every window however slowly this machine got here.
    const window = `${Math.max(15, Math.ceil(at - p.startedAt) + 1)}s`;
    const time = { __rate_interval: window, __interval: "1s", __range: window };
    const ids = cl.nodes.map((n) => n.id);
    const passes = [
      {
        name: "one cluster and namespace",
        values: { cluster: CLUSTER, namespace: NAMESPACE, pod: `(${ids.join("|")})` },
      },
      { name: "All", values: { cluster: ".*", namespace: ".*", pod: ".*" } },
    ];
    const problems: string[] = [];
    let checked = 0;
    for (const pass of passes) {
      const values = { ...pass.values, ...time };
      for (const e of panelExpressions(DASHBOARD)) {
        const expr = interpolate(e.expr, values);
        const trouble = problem(e, expr, await p.query(expr, at));
        if (trouble) problems.push(`[${pass.name}] ${trouble}`);
        checked++;
      }
      for (const e of variableExpressions(DASHBOARD)) {
        const lv = labelValuesQuery(e.expr);
        if (!lv) {
          problems.push(`${e.where}: not label_values(selector, label): ${e.expr}`);
          continue;
        }
        const match = interpolate(lv.match, values);
        const got = await p.labelValues(lv.label, match, Math.floor(p.startedAt), Math.ceil(at));
        const want = { cluster: [CLUSTER], namespace: [NAMESPACE], pod: ids }[lv.label] ?? [];
        const missing = want.filter((v) => !got.includes(v));
        if (got.length === 0 || missing.length)
          problems.push(`[${pass.name}] ${e.where}: ${lv.label} of ${match} → [${got}], missing ${missing}`);
        checked++;
      }
    }
    console.log(`dashboards: ${checked} PromQL expressions checked against Prometheus, window ${window}`);
    assert.deepEqual(problems, [], "dashboard expressions without data");

    // The panels say what happened: the standby is the one primary now...
    const all = { cluster: ".*", namespace: ".*", pod: ".*", ...time };
    const panel = async (title: string) => {
      const e = panelExpressions(DASHBOARD).find((x) => x.where.startsWith(`panel "${title}"`))!;
      const a = await p.query(interpolate(e.expr, all), at);
      assert.ok(a.ok);
      return a.result;
    };
    assert.deepEqual(
      (await panel("Current primary")).map((s) => s.metric.pod),
      [standby.id],
    );
    assert.equal(Number((await panel("Pods claiming primary"))[0]?.value[1]), 1);
    // ...it became primary across the kill, and timed the failover.
    const transitionsAfter = await p.query(transitions, at);
    assert.ok(transitionsBefore.ok && transitionsAfter.ok);
    const n = (a: Sample[]) => Number(a[0]?.value[1]);
    assert.ok(
      n(transitionsAfter.result) > n(transitionsBefore.result),
      `${transitions}: ${n(transitionsBefore.result)} before the kill, ${n(transitionsAfter.result)} after`,
    );
    const count = await p.query(`provisiond_failover_duration_seconds_count{pod="${standby.id}"}`, at);
    assert.ok(
      count.ok && n(count.result) > 0,
      "no failover observed in provisiond_failover_duration_seconds",
    );
  });
});
