/** The "provisiond — cluster" dashboard: who leads, how failovers go, and whether events flow to the store. */
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { states, stateTimeline, statPanel, timeSeries } from "./panels.js";
import { clusterWide, increase, onPrimary, quantile, rate, sel } from "./promql.js";
import { datasourceVariable, labelVariables } from "./variables.js";

export const UID = "provisiond-cluster";

function leadership(d: dashboard.DashboardBuilder): void {
  d.withRow(new dashboard.RowBuilder("Leadership and failover"))
    .withPanel(
      stateTimeline({
        title: "Primary by pod",
        description:
          "Which pod held the leader lease, and when. Exactly one pod should be primary at any moment; two at once would mean both believe they lead (the store's fencing token still refuses the older one's writes). A gap is a pod that did not answer its scrape, e.g. one that was killed.",
        queries: [{ expr: `max by (pod) (${sel("provisiond_leader")})`, legend: "{{pod}}" }],
        mappings: states({ 0: { text: "standby", color: "blue" }, 1: { text: "primary", color: "green" } }),
        w: 16,
      }),
    )
    .withPanel(
      statPanel({
        title: "Current primary",
        description:
          "The pod that runs the agent now: the one whose logs and /status to read first when provisioning stalls.",
        queries: [{ expr: `max by (pod) (${sel("provisiond_leader")}) == 1`, legend: "{{pod}}" }],
        show: "name",
        noValue: "none",
        thresholds: [{ value: null, color: "green" }],
        w: 4,
      }),
    )
    .withPanel(
      statPanel({
        title: "Pods claiming primary",
        description:
          "Over the whole cluster, whatever pods are selected. 1 is healthy. 0 means nothing is being provisioned (normal for up to a lease TTL during a failover); 2 or more means two nodes think they lead, which the fencing token makes harmless but should never last.",
        queries: [{ expr: `sum(${clusterWide("provisiond_leader")})`, legend: "primaries" }],
        show: "value",
        thresholds: [
          { value: null, color: "red" },
          { value: 1, color: "green" },
          { value: 2, color: "red" },
        ],
        w: 4,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Failovers per hour",
        description:
          "Times a pod became primary, per hour, by the pod that took over. A steady trickle points at flapping leases (etcd latency, CPU starvation, a TTL too short for the network) rather than crashes.",
        queries: [
          {
            expr: `sum by (pod) (${increase("provisiond_leader_transitions_total", 'to="primary"')})`,
            legend: "{{pod}}",
          },
        ],
        unit: "short",
        style: "bars",
        interval: "1h",
        w: 12,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Failover duration p50 / p99",
        description:
          "From the previous primary's key disappearing (or its lease expiring) to the new primary's first processed event, per hour with failovers. This is the time provisioning stood still; expect roughly a lease TTL after a crash and much less after a graceful handover (SIGTERM).",
        queries: [
          { expr: quantile(0.5, "provisiond_failover_duration_seconds"), legend: "p50" },
          { expr: quantile(0.99, "provisiond_failover_duration_seconds"), legend: "p99" },
        ],
        unit: "s",
        style: "points",
        interval: "1h",
        w: 12,
      }),
    );
}

function leaseHealth(d: dashboard.DashboardBuilder): void {
  d.withRow(new dashboard.RowBuilder("Lease health and fencing"))
    .withPanel(
      timeSeries({
        title: "Lease keepalive failures",
        description:
          "Keepalives etcd did not acknowledge in time. They come before self-demotions: a primary whose keepalives fail for TTL/2 stops itself, so a rise here is the early warning for a failover (etcd overloaded or unreachable).",
        queries: [
          {
            expr: `sum by (pod) (${increase("provisiond_lease_keepalive_failures_total")})`,
            legend: "{{pod}}",
          },
        ],
        unit: "short",
        style: "bars",
        w: 8,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Self-demotions",
        description:
          "A primary stopping itself, by reason: keepalive (its lease could no longer be trusted), key-gone (the lease expired while etcd was out of reach), fenced (the store had seen a newer term), agent-failed. Each one is a failover.",
        queries: [
          {
            expr: `sum by (pod, reason) (${increase("provisiond_self_demotions_total")})`,
            legend: "{{pod}} {{reason}}",
          },
        ],
        unit: "short",
        style: "bars",
        w: 8,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Fencing rejections",
        description:
          "Writes the store refused because their fencing token belonged to an older term: a deposed primary (paused, partitioned) that woke up and tried to write. Each refusal is a stale write that did not happen; many of them, with no failover behind, mean the agent credential is in the wrong hands.",
        queries: [
          { expr: `sum by (pod) (${increase("provisiond_fencing_rejections_total")})`, legend: "{{pod}}" },
        ],
        unit: "short",
        style: "bars",
        w: 8,
      }),
    );
}

function agent(d: dashboard.DashboardBuilder): void {
  d.withRow(new dashboard.RowBuilder("Agent (Okta → SCIM)"))
    .withPanel(
      timeSeries({
        title: "Events per second by type and outcome",
        description:
          "Okta System Log events the primary's agent processed, by event type and outcome. Zero while Okta logs changes means provisioning has stopped; a growing dead or ignored share is worth a look at /status.",
        queries: [
          {
            expr: `sum by (type, outcome) (${rate("provisiond_events_processed_total")})`,
            legend: "{{type}} {{outcome}}",
          },
        ],
        unit: "eps",
        w: 12,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Event lag (primary)",
        description:
          "Now minus the published time of the last event the primary applied, set after each round that applied events: how far the app trails Okta. Standbys are left out, since they keep the value from when they last led.",
        queries: [
          {
            expr: `max by (pod) (${onPrimary(sel("provisiond_event_lag_seconds"))})`,
            legend: "{{pod}}",
          },
        ],
        unit: "s",
        w: 12,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Dead letters",
        description:
          "Events that can never apply (the connector refused them for good), recorded with their reason (in etcd; in the data dir when standalone) and listed in /status. The stream goes on without them, so each one is a user or group out of sync until someone acts.",
        queries: [{ expr: `sum by (pod) (${increase("provisiond_dead_letters_total")})`, legend: "{{pod}}" }],
        unit: "short",
        style: "bars",
        w: 12,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Okta rate-limit headroom",
        description:
          "X-Rate-Limit-Remaining of the primary's last Okta response, per endpoint family. Near zero the agent gets 429s and waits for the reset, which shows up as event lag; the budget is shared with everything else that calls the org's API.",
        queries: [
          {
            expr: `min by (bucket) (${onPrimary(sel("provisiond_okta_rate_limit_remaining"))})`,
            legend: "{{bucket}}",
          },
        ],
        unit: "short",
        w: 12,
      }),
    );
}

function scim(d: dashboard.DashboardBuilder): void {
  d.withRow(new dashboard.RowBuilder("SCIM connector"))
    .withPanel(
      timeSeries({
        title: "SCIM requests by route",
        description:
          "Requests every connector answered, from the agent and from any other SCIM client (Okta's own agent, Entra).",
        queries: [
          { expr: `sum by (route) (${rate("provisiond_scim_requests_total")})`, legend: "{{route}}" },
        ],
        unit: "reqps",
        w: 8,
      }),
    )
    .withPanel(
      timeSeries({
        title: "SCIM responses by status class",
        description:
          "Responses by pod and status class. 5xx (red) is the store failing or the breaker open: the agent waits and retries, so events queue up. 4xx (orange) is refused input or credentials: the agent's 400/409s become dead letters, an identity provider's 401s mean a wrong token.",
        queries: [
          {
            expr: `sum by (pod, class) (label_replace(${rate("provisiond_scim_requests_total")}, "class", "$1", "status", "([0-9]).."))`,
            legend: "{{pod}} {{class}}xx",
          },
        ],
        unit: "reqps",
        w: 8,
      })
        .overrideByRegexp(".*5xx", [{ id: "color", value: { mode: "fixed", fixedColor: "red" } }])
        .overrideByRegexp(".*4xx", [{ id: "color", value: { mode: "fixed", fixedColor: "orange" } }]),
    )
    .withPanel(
      timeSeries({
        title: "SCIM p99 latency by route",
        description:
          "99th percentile of SCIM request latency by route. A rising p99 is usually the store, and comes before client timeouts and 503s.",
        queries: [
          {
            expr: quantile(0.99, "provisiond_scim_request_duration_seconds", ["route"]),
            legend: "{{route}}",
          },
        ],
        unit: "s",
        w: 8,
      }),
    );
}

function store(d: dashboard.DashboardBuilder): void {
  d.withRow(new dashboard.RowBuilder("Store"))
    .withPanel(
      stateTimeline({
        title: "Circuit breaker state",
        description:
          "The store's circuit breaker per pod. Open means the store failed often enough that requests are refused at once with 503 and Retry-After (the agent waits); half-open is a trial call after the reset time.",
        queries: [
          {
            expr: `max by (pod, breaker) (${sel("provisiond_breaker_state")})`,
            legend: "{{pod}} {{breaker}}",
          },
        ],
        mappings: states({
          0: { text: "closed", color: "green" },
          1: { text: "half-open", color: "yellow" },
          2: { text: "open", color: "red" },
        }),
        w: 12,
        h: 8,
      }),
    )
    .withPanel(
      timeSeries({
        title: "Store transaction p99 by operation",
        description:
          "99th percentile of app store transaction time by operation. In a cluster a transaction that outlives the breaker timeout (40% of the lease TTL) fails and counts against the breaker, so a p99 approaching it comes before 503s.",
        queries: [
          {
            expr: quantile(0.99, "provisiond_store_query_duration_seconds", ["operation"]),
            legend: "{{operation}}",
          },
        ],
        unit: "s",
        w: 12,
      }),
    );
}

export function clusterDashboard(): dashboard.Dashboard {
  const d = new dashboard.DashboardBuilder("provisiond — cluster")
    .uid(UID)
    .description("Leadership, failovers, event flow and the SCIM connector of a provisiond cluster")
    .tags(["provisiond"])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: "now-6h", to: "now" })
    .refresh("30s")
    .withVariable(datasourceVariable());
  for (const v of labelVariables()) d.withVariable(v);
  leadership(d);
  leaseHealth(d);
  agent(d);
  scim(d);
  store(d);
  const built = d.build();
  // The SDK leaves panel ids unset (rows get 0); stable ids keep ?viewPanel= links working across rebuilds.
  for (const [i, p] of (built.panels ?? []).entries()) p.id = i + 1;
  return built;
}
