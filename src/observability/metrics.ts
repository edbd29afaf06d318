/** The node's Prometheus metrics (prefix provisiond_, base units, _total on counters). One instance per node. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  readonly scimRequests = new Counter({
    name: "provisiond_scim_requests_total",
    help: "SCIM requests answered, by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });

  readonly scimDuration = new Histogram({
    name: "provisiond_scim_request_duration_seconds",
    help: "SCIM request latency",
    labelNames: ["method", "route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly storeQueryDuration = new Histogram({
    name: "provisiond_store_query_duration_seconds",
    help: "App store transaction latency, by operation",
    labelNames: ["operation"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly breakerState = new Gauge({
    name: "provisiond_breaker_state",
    help: "Circuit breaker state: 0 closed, 1 half-open, 2 open",
    labelNames: ["breaker"] as const,
    registers: [this.registry],
  });

  readonly breakerEvents = new Counter({
    name: "provisiond_breaker_events_total",
    help: "Circuit breaker events (open, halfOpen, close, reject, timeout, failure)",
    labelNames: ["breaker", "event"] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: "provisiond_scim_auth_failures_total",
    help: "SCIM requests refused for a missing or wrong credential",
    registers: [this.registry],
  });

  readonly agentHeaderRefusals = new Counter({
    name: "provisiond_scim_agent_header_refusals_total",
    help: "SCIM requests refused (403) for carrying the agent's fencing or idempotency headers, or raising the fence, without the agent credential",
    registers: [this.registry],
  });

  readonly fencingRejections = new Counter({
    name: "provisiond_fencing_rejections_total",
    help: "Writes refused because their fencing token was older than the current term",
    registers: [this.registry],
  });

  readonly scimBulkOperations = new Counter({
    name: "provisiond_scim_bulk_operations_total",
    help: "Operations of /Bulk requests, by method, resource endpoint and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });

  readonly expiredLeasesRevoked = new Counter({
    name: "provisiond_expired_leases_revoked_total",
    help: "Expired leader leases this node revoked without waiting for etcd's expiry sweep",
    registers: [this.registry],
  });

  readonly podLabelFailures = new Counter({
    name: "provisiond_pod_label_failures_total",
    help: "Kubernetes API calls for the provisiond.io/role pod label that failed (each is retried)",
    registers: [this.registry],
  });

  readonly idempotentReplays = new Counter({
    name: "provisiond_idempotent_replays_total",
    help: "Writes answered from the idempotency record instead of being applied again",
    registers: [this.registry],
  });

  /**
   * Asked at every scrape, the gauge's only source (the election sets it; a standalone node reports 0): a node
   * frozen past its lease that wakes up must not report itself leader in the moment before its demotion timer
   * runs.
   */
  isLeader: (() => boolean) | undefined;

  readonly leader = new Gauge({
    name: "provisiond_leader",
    help: "1 while this node is the primary, else 0",
    registers: [this.registry],
    collect: () => {
      if (this.isLeader) this.leader.set(this.isLeader() ? 1 : 0);
    },
  });

  readonly leaderTransitions = new Counter({
    name: "provisiond_leader_transitions_total",
    help: "Times this node became primary or stopped being primary",
    labelNames: ["to"] as const,
    registers: [this.registry],
  });

  readonly failoverDuration = new Histogram({
    name: "provisiond_failover_duration_seconds",
    help: "From the previous primary's key disappearing (or expiring) to this node's first processed event",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 30, 60],
    registers: [this.registry],
  });

  readonly keepaliveFailures = new Counter({
    name: "provisiond_lease_keepalive_failures_total",
    help: "Lease keepalives that etcd did not acknowledge in time",
    registers: [this.registry],
  });

  readonly selfDemotions = new Counter({
    name: "provisiond_self_demotions_total",
    help: "Times this primary stopped itself because its lease could no longer be trusted",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly eventsProcessed = new Counter({
    name: "provisiond_events_processed_total",
    help: "Source events processed by the agent, by event type and outcome",
    labelNames: ["type", "outcome"] as const,
    registers: [this.registry],
  });

  /** Asked at every scrape (the agent runner sets it): the agent's lag, the same value /status serves. */
  eventLagSource: (() => number | null) | undefined;

  readonly eventLag = new Gauge({
    name: "provisiond_event_lag_seconds",
    help: "How old the oldest event not yet applied may be: 0 when caught up, and on a node whose agent is not running (a standby); the same value as /status eventLagSeconds",
    registers: [this.registry],
    collect: () => {
      this.eventLag.set(this.eventLagSource?.() ?? 0);
    },
  });

  readonly cursorTimestamp = new Gauge({
    name: "provisiond_cursor_timestamp_seconds",
    help: "Published time of the last event behind the stored cursor",
    registers: [this.registry],
  });

  readonly deadLetters = new Counter({
    name: "provisiond_dead_letters_total",
    help: "Events that can never apply, recorded as dead letters",
    registers: [this.registry],
  });

  readonly agentRoundFailures = new Counter({
    name: "provisiond_agent_round_failures_total",
    help: "Agent rounds that failed and were retried from the cursor, by reason (okta-<status>, scim-<status>, scim-protocol, other)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  readonly fenceAhead = new Gauge({
    name: "provisiond_fence_ahead",
    help: "1 while the store's fencing token is above etcd's revision, so no term can write (see README)",
    registers: [this.registry],
  });

  readonly agentRetries = new Counter({
    name: "provisiond_agent_retries_total",
    help: "Agent requests retried, by target and reason",
    labelNames: ["target", "reason"] as const,
    registers: [this.registry],
  });

  readonly oktaRateLimitRemaining = new Gauge({
    name: "provisiond_okta_rate_limit_remaining",
    help: "X-Rate-Limit-Remaining of the last Okta response, by endpoint family",
    labelNames: ["bucket"] as const,
    registers: [this.registry],
  });

  readonly oktaCalls = new Counter({
    name: "provisiond_okta_api_calls_total",
    help: "Okta API calls, by endpoint family and status",
    labelNames: ["bucket", "status"] as const,
    registers: [this.registry],
  });

  constructor(nodeId: string) {
    this.registry.setDefaultLabels({ node: nodeId });
    collectDefaultMetrics({ register: this.registry, prefix: "provisiond_" });
    // A labelled counter exports nothing before its first increment: a panel over it reads "no data" instead
    // of 0, and increase() misses that first increment. Label values known in advance start at zero, as
    // Prometheus advises (the values: election.ts demote()/lost() and the runner's stepDown() reasons).
    for (const to of ["primary", "standby"]) this.leaderTransitions.inc({ to }, 0);
    for (const reason of ["keepalive", "key-gone", "fenced", "agent-failed"])
      this.selfDemotions.inc({ reason }, 0);
  }
}
