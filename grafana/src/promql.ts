/**
 * PromQL pieces shared by the panels. Every selector filters on the dashboard's variables; `cluster` and
 * `namespace` are regex matches so that "All" (`.*`) also matches series without the label (docker-compose,
 * a single cluster).
 */

/** The label that names a node in every legend: the Prometheus Operator's target label (= the node id). */
export const BY = "pod";

/** A series selector for `metric` filtered by the dashboard's variables, plus `extra` matchers. */
export function sel(metric: string, extra = ""): string {
  const base = `cluster=~"$cluster", namespace=~"$namespace", pod=~"$pod"`;
  return `${metric}{${extra ? `${base}, ${extra}` : base}}`;
}

/** `metric` over every pod of the selected clusters and namespaces, whatever `$pod` is: a cluster-wide count. */
export function clusterWide(metric: string): string {
  return `${metric}{cluster=~"$cluster", namespace=~"$namespace"}`;
}

/** Per-second rate over Grafana's `$__rate_interval`, which stays at least 4 scrape intervals wide. */
export function rate(metric: string, extra = ""): string {
  return `rate(${sel(metric, extra)}[$__rate_interval])`;
}

/** Count in each `$__rate_interval` window: what rare events (a failover, a fencing refusal) read best as. */
export function increase(metric: string, extra = ""): string {
  return `increase(${sel(metric, extra)}[$__rate_interval])`;
}

/** `q` quantile of histogram `metric` (without `_bucket`), aggregated by `by` besides `le`. */
export function quantile(q: number, metric: string, by: string[] = []): string {
  return `histogram_quantile(${q}, sum by (${["le", ...by].join(", ")}) (${rate(`${metric}_bucket`)}))`;
}

/**
 * Keeps only the series of the pod that is primary now: standbys keep the last value they set while they
 * led (event lag, Okta headroom), which would read as current.
 */
export function onPrimary(expr: string): string {
  return `${expr} and on (cluster, namespace, pod) (${sel("provisiond_leader")} == 1)`;
}
