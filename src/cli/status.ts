/** The admin server of a node: /healthz, /readyz, /metrics and the /status document. */
import type { Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentRunner } from "../agent/runner.js";
import type { Config } from "../config/index.js";
import { createAdminServer } from "../observability/admin-server.js";
import type { Metrics } from "../observability/metrics.js";
import type { AppStore } from "../store/index.js";
import type { ClusterSide } from "./primary.js";

export interface StatusSources {
  cfg: Config;
  store: AppStore;
  cluster: ClusterSide;
  /** The agent runner, once it started (read at each request). */
  runner: () => AgentRunner | undefined;
  startedAt: string;
}

const ETCD_READ_MS = 500;

function withinMs<T>(p: Promise<T>, ms: number): Promise<T> {
  const late = sleep(ms, undefined, { ref: false }).then(() => {
    throw new Error(`no answer within ${ms} ms`);
  });
  return Promise.race([p, late]);
}

/** What GET /status answers (README, "Observability"). */
export async function nodeStatus(s: StatusSources) {
  const { cfg, store, cluster } = s;
  const runner = s.runner();
  const agent = runner?.current;
  // etcd may be down or slow: /status answers at once all the same, with what it could not read left null.
  const cursor =
    agent?.cursor ?? (await withinMs(cluster.cursor.read(), ETCD_READ_MS).catch(() => undefined));
  const dead = await withinMs(cluster.deadLetters.recent(5), ETCD_READ_MS).catch(() => ({
    total: null,
    items: [],
  }));
  const el = cluster.election?.status();
  return {
    nodeId: cfg.nodeId,
    role: el?.role ?? "standalone",
    leaderId: el ? el.leaderId : cfg.nodeId,
    term: el?.term ?? null,
    since: el?.since ?? s.startedAt,
    lease: el?.lease ?? null,
    members: cluster.election?.members ?? [{ nodeId: cfg.nodeId, role: "standalone", term: null }],
    cursor: cursor
      ? { published: cursor.published ?? null, updatedAt: cursor.updatedAt, term: cursor.term ?? null }
      : null,
    // The gauge provisiond_event_lag_seconds serves the same value (src/agent/event-lag.ts defines it).
    eventLagSeconds: agent ? agent.lag.seconds() : null,
    agent: {
      source: cfg.agent.source,
      // An agent whose term has ended can no longer write (its requests are cut off, the cursor's Compare
      // fails) but may still be letting go, e.g. of an etcd call to a member it is cut off from.
      running: agent?.lead.isCurrent() === true,
      stopping: agent !== undefined && !agent.lead.isCurrent(),
      term: agent?.lead.term ?? null,
      caughtUp: agent?.lag.caughtUp ?? false,
      lastPollAt: agent?.lag.lastPollAt ?? null,
      appliedThrough: agent?.lag.appliedThrough ?? null,
      waitingUntil: agent?.waiting?.until ?? null,
      waitingFor: agent?.waiting ? `${agent.waiting.reason} (${agent.waiting.bucket})` : null,
      oktaRateLimits: agent?.oktaBudgets ?? {},
      trouble: runner?.trouble ?? null,
      fenceAhead: runner?.fenceAhead ?? null,
      lastDeposed: runner?.lastDeposed ?? null,
    },
    breaker: store.breaker.status(),
    failovers: cluster.election?.failovers ?? [],
    deadLetters: dead,
    store: { kind: store.kind },
    startedAt: s.startedAt,
  };
}

export function createNodeAdmin(s: StatusSources, metrics: Metrics): Server {
  return createAdminServer({
    metrics,
    ready: async (query) => {
      const election = s.cluster.election;
      if (query.get("role") === "primary" && !(election ? election.isPrimary() : true)) {
        throw new Error(`this node is ${election?.role ?? "standalone"}, not the primary`);
      }
      await s.store.ping();
    },
    status: () => nodeStatus(s),
  });
}
