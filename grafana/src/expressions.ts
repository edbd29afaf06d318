/**
 * The PromQL a dashboard's JSON holds, read back from the JSON itself (not from the builder), so the tests
 * check what Grafana will load.
 */

interface PanelJson {
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: { refId?: string; expr?: string; datasource?: { uid?: string } }[];
  panels?: PanelJson[];
}

interface VariableJson {
  type: string;
  name: string;
  query?: string | { query?: string };
  datasource?: { uid?: string };
}

export interface DashboardJson {
  uid?: string;
  panels?: PanelJson[];
  templating?: { list?: VariableJson[] };
  [key: string]: unknown;
}

export interface Expression {
  /** Where it came from, for a failure message: `panel "Title" A` or `variable pod`. */
  where: string;
  expr: string;
}

/** Every panel but rows, including the panels a collapsed row keeps inside itself. */
export function panels(d: DashboardJson): PanelJson[] {
  const out: PanelJson[] = [];
  const walk = (list: PanelJson[] = []) => {
    for (const p of list) {
      if (p.type !== "row") out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

export function panelExpressions(d: DashboardJson): Expression[] {
  return panels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId ?? "?"}`, expr: t.expr ?? "" })),
  );
}

export function queryVariables(d: DashboardJson): VariableJson[] {
  return (d.templating?.list ?? []).filter((v) => v.type === "query");
}

export function variableExpressions(d: DashboardJson): Expression[] {
  return queryVariables(d).map((v) => ({
    where: `variable ${v.name}`,
    expr: typeof v.query === "string" ? v.query : (v.query?.query ?? ""),
  }));
}

/**
 * Grafana's `$name` / `${name}` substitution for the names given; anything else (`$1` of label_replace)
 * stays as it is, as Grafana leaves an unknown variable.
 */
export function interpolate(expr: string, values: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, braced: string | undefined, bare: string | undefined) => {
    const v = values[(braced ?? bare)!];
    return v ?? m;
  });
}

/** `label_values(selector, label)` → its parts, as the Prometheus datasource splits it. */
export function labelValuesQuery(expr: string): { match: string; label: string } | undefined {
  const m = /^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)\s*$/.exec(expr);
  return m ? { match: m[1] ?? "", label: m[2]! } : undefined;
}
