/**
 * The checked-in Grafana dashboards are what grafana/src builds, byte for byte (the chart's copy too), and
 * keep the rules that make them load anywhere: a fixed uid, the datasource as a variable rather than
 * `__inputs`, every query on that variable, filtered by cluster/namespace/pod and windowed by $__rate_interval.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { describe, it } from "node:test";
import { DASHBOARDS, ROOT } from "../../grafana/src/dashboards.js";
import {
  type DashboardJson,
  panelExpressions,
  panels,
  queryVariables,
  variableExpressions,
} from "../../grafana/src/expressions.js";

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const DS = "${datasource}";
const CLUSTER = "grafana/dashboards/provisiond-cluster.json";
const cluster = JSON.parse(readFileSync(`${ROOT}/${CLUSTER}`, "utf8")) as DashboardJson;

/** The panels the dashboard promises (README, "Dashboards"). */
const TITLES = [
  "Primary by pod",
  "Current primary",
  "Pods claiming primary",
  "Failovers per hour",
  "Failover duration p50 / p99",
  "Lease keepalive failures",
  "Self-demotions",
  "Fencing rejections",
  "Events per second by type and outcome",
  "Event lag (primary)",
  "Dead letters",
  "Okta rate-limit headroom",
  "SCIM requests by route",
  "SCIM responses by status class",
  "SCIM p99 latency by route",
  "Circuit breaker state",
  "Store transaction p99 by operation",
];

describe("Grafana dashboards", () => {
  it("are up to date with grafana/src (run `npm run grafana:build`)", () => {
    for (const d of DASHBOARDS) {
      const want = d.render();
      for (const file of d.files)
        assert.ok(
          readFileSync(file, "utf8") === want,
          `${relative(ROOT, file)} differs from what grafana/src builds: run \`npm run grafana:build\``,
        );
    }
  });

  it("have a fixed uid and no __inputs (which sidecar and file provisioning cannot fill in)", () => {
    assert.equal(cluster.uid, "provisiond-cluster");
    assert.equal("__inputs" in cluster, false);
    assert.doesNotMatch(readFileSync(`${ROOT}/${CLUSTER}`, "utf8"), /__inputs|\$\{DS_/);
  });

  it("query through the datasource variable only", () => {
    const ds = (cluster.templating?.list ?? []).find((v) => v.name === "datasource");
    assert.equal(ds?.type, "datasource");
    assert.equal(ds?.query, "prometheus");
    const off: string[] = [];
    for (const p of panels(cluster)) {
      if (p.datasource?.uid !== DS) off.push(`panel "${p.title}"`);
      for (const t of p.targets ?? [])
        if (t.datasource?.uid !== DS) off.push(`panel "${p.title}" ${t.refId}`);
    }
    for (const v of queryVariables(cluster)) if (v.datasource?.uid !== DS) off.push(`variable ${v.name}`);
    assert.deepEqual(off, [], `not on ${DS}`);
  });

  it("have namespace, cluster and pod variables that also match series without the label", () => {
    const vars = new Map(queryVariables(cluster).map((v) => [v.name, v]));
    for (const name of ["namespace", "cluster", "pod"]) {
      const v = vars.get(name) as { includeAll?: boolean; allValue?: string; query?: unknown } | undefined;
      assert.ok(v, `no ${name} variable`);
      assert.match(String(v.query), new RegExp(`^label_values\\(.*, ${name}\\)$`));
      assert.equal(v.includeAll, true, name);
      assert.equal(v.allValue, ".*", name);
    }
  });

  it("window every rate and increase by $__rate_interval, and use no other range", () => {
    const exprs = [...panelExpressions(cluster), ...variableExpressions(cluster)];
    assert.ok(exprs.length > 0);
    const bad: string[] = [];
    for (const { where, expr } of exprs) {
      // Brackets inside label matchers and label_replace regexes are not ranges.
      const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
      for (const m of code.matchAll(/\b(?:i?rate|increase)\(/g)) {
        const range = /\[([^\]]*)\]/.exec(code.slice(m.index))?.[1];
        if (range !== "$__rate_interval") bad.push(`${where}: ${m[0]} over [${range}] in ${expr}`);
      }
      for (const [, range] of code.matchAll(/\[([^\]]*)\]/g))
        if (range !== "$__rate_interval") bad.push(`${where}: range [${range}] in ${expr}`);
    }
    assert.deepEqual(bad, []);
  });

  it("filter every provisiond series by cluster, namespace and pod (a cluster-wide count by the first two)", () => {
    const bad: string[] = [];
    for (const { where, expr } of panelExpressions(cluster))
      for (const m of expr.matchAll(/\bprovisiond_\w+(\{[^}]*\})?/g))
        for (const label of where.includes("Pods claiming primary")
          ? ["cluster", "namespace"]
          : ["cluster", "namespace", "pod"])
          if (!m[1]?.includes(`${label}=~"$${label}"`)) bad.push(`${where}: ${m[0]} lacks ${label}`);
    assert.deepEqual(bad, []);
  });

  it("have every panel the README lists, each with a description, and unique panel ids", () => {
    const all = panels(cluster) as { title?: string; description?: string }[];
    const titles = all.map((p) => p.title);
    assert.deepEqual(
      TITLES.filter((t) => !titles.includes(t)),
      [],
      "missing panels",
    );
    assert.deepEqual(
      all.filter((p) => !p.description).map((p) => p.title),
      [],
      "panels without a description",
    );
    const ids = (cluster.panels ?? []).map((p) => (p as { id?: number }).id);
    assert.equal(new Set(ids).size, ids.length, `panel ids repeat: ${ids.join(",")}`);
  });
});
