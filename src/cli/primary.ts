/** The primary side of a node: the election (or none, standalone) and the agent that runs in each term. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ExponentialBackoff, noJitterGenerator } from "cockatiel";
import type { Etcd3 } from "etcd3";
import type { Logger } from "pino";
import { Agent } from "../agent/agent.js";
import { OktaClient } from "../agent/okta-client.js";
import { AgentRunner } from "../agent/runner.js";
import { ScimClient } from "../agent/scim-client.js";
import { type Cursor, EtcdCursor, FileCursor } from "../cluster/cursor.js";
import { type DeadLetters, EtcdDeadLetters, FileDeadLetters } from "../cluster/dead-letters.js";
import { Election } from "../cluster/election.js";
import { deadline, type EtcdConfig, etcdClient, etcdTrouble } from "../cluster/etcd.js";
import type { Leadership } from "../cluster/leadership.js";
import { type Config, ConfigError } from "../config/index.js";
import { kubernetesPods } from "../kubernetes/pods.js";
import { RoleLabel } from "../kubernetes/role-label.js";
import type { Metrics } from "../observability/metrics.js";
import { readCaFile, tlsPair } from "./connector.js";

/**
 * Where the agent's SCIM requests go: the configured connector, or this node's own on loopback (trusting its
 * own certificate when it serves TLS).
 */
export function agentScimTarget(cfg: Config, port: number, agentToken: string) {
  const a = cfg.agent;
  const ca = a.scimCaFile ?? (!a.scimUrl && cfg.tls ? cfg.tls.certFile : undefined);
  return {
    baseUrl: a.scimUrl ?? `${cfg.tls ? "https" : "http"}://127.0.0.1:${port}/scim/v2`,
    authorization: `Bearer ${a.scimToken ?? agentToken}`,
    ...(ca ? { tls: { ca: readFileSync(ca) } } : {}),
  };
}

/** The cluster side of a node: election, cursor and dead letters in etcd, or local files when standalone. */
export function startCluster(cfg: Config, logger: Logger, metrics: Metrics) {
  const root = `${cfg.cluster.prefix}/${cfg.cluster.name}`;
  if (!cfg.cluster.etcd) {
    return {
      election: undefined,
      cursor: new FileCursor(resolve(cfg.dataDir, "agent-cursor.json")) as Cursor,
      deadLetters: new FileDeadLetters(resolve(cfg.dataDir, "dead-letters.jsonl")) as DeadLetters,
      stop: async () => {},
    };
  }
  checkEtcdTls(cfg.cluster.etcd);
  const client = etcdClient(cfg.cluster.etcd);
  const probe = awaitEtcd(client, root, cfg.cluster.etcd, logger.child({ component: "etcd" }));
  const election = new Election({
    client,
    root,
    nodeId: cfg.nodeId,
    ttlMs: cfg.cluster.leaseTtlMs,
    logger: logger.child({ component: "election" }),
    metrics,
  });
  const label = cfg.kubernetes && podRoleLabel(cfg.kubernetes, election, logger, metrics);
  return {
    election,
    cursor: new EtcdCursor(client, `${root}/cursor`) as Cursor,
    deadLetters: new EtcdDeadLetters(client, `${root}/dead/`) as DeadLetters,
    stop: async () => {
      probe.stop();
      await election.stop();
      await label?.stop();
      client.close();
    },
  };
}

export type ClusterSide = ReturnType<typeof startCluster>;

/**
 * The etcd TLS files, read before the client is made: grpc-js would refuse a swapped or non-PEM file with
 * OpenSSL's bare "PEM routines::no start line", and would send no client certificate without a CA file.
 */
function checkEtcdTls(e: EtcdConfig): void {
  if (e.certFile !== undefined && e.keyFile === undefined)
    throw new ConfigError(
      "PROVISIOND_ETCD_KEY_FILE",
      "PROVISIOND_ETCD_CERT_FILE is set: give its private key too",
    );
  if (e.keyFile !== undefined && e.certFile === undefined)
    throw new ConfigError(
      "PROVISIOND_ETCD_CERT_FILE",
      "PROVISIOND_ETCD_KEY_FILE is set: give its certificate too",
    );
  if (e.certFile !== undefined && e.caFile === undefined)
    throw new ConfigError(
      "PROVISIOND_ETCD_CA_FILE",
      "a client certificate (PROVISIOND_ETCD_CERT_FILE) is sent only over TLS, which this file turns on: set it to the CA that signed etcd's certificate",
    );
  if (e.caFile) readCaFile({ variable: "PROVISIOND_ETCD_CA_FILE", file: e.caFile });
  if (e.certFile && e.keyFile)
    tlsPair(
      { variable: "PROVISIOND_ETCD_CERT_FILE", file: e.certFile },
      { variable: "PROVISIOND_ETCD_KEY_FILE", file: e.keyFile },
    );
}

/**
 * etcd's first use: one read, repeated with back-off until etcd answers. The election keeps trying on its own
 * (the node stays standby meanwhile) but only says "cannot campaign"; this says once which setting names which
 * endpoints and why they do not answer, and once more when they do. Later outages are the election's to log.
 */
function awaitEtcd(client: Etcd3, root: string, etcd: EtcdConfig, logger: Logger): { stop(): void } {
  const stopped = new AbortController();
  const endpoints = etcd.endpoints.join(",");
  void (async () => {
    let backoff = new ExponentialBackoff({
      initialDelay: 500,
      maxDelay: 5000,
      generator: noJitterGenerator,
    }).next();
    let down: string | undefined;
    while (!stopped.signal.aborted) {
      try {
        await client.get(root).options(deadline(2000)).exec();
        if (down !== undefined)
          logger.info({ endpoints }, `etcd reachable at PROVISIOND_ETCD_ENDPOINTS=${endpoints}`);
        return;
      } catch (err) {
        if (stopped.signal.aborted) return;
        const { cause, variable } = etcdTrouble(err);
        if (cause !== down) {
          logger.warn(
            { variable, endpoints, cause },
            `etcd unreachable: ${cause} (PROVISIOND_ETCD_ENDPOINTS=${endpoints}${variable === "PROVISIOND_ETCD_ENDPOINTS" ? "" : `; check ${variable}`}); this node stays standby and keeps trying`,
          );
          down = cause;
        }
        await sleep(backoff.duration, undefined, { signal: stopped.signal }).catch(() => undefined);
        backoff = backoff.next(undefined);
      }
    }
  })();
  return { stop: () => stopped.abort() };
}

/** The pod label the chart's -primary Service selects, following the election. */
function podRoleLabel(
  k: NonNullable<Config["kubernetes"]>,
  election: Election,
  logger: Logger,
  metrics: Metrics,
) {
  const label = new RoleLabel({
    pods: kubernetesPods(k.namespace),
    pod: k.pod,
    peers: k.peers,
    logger: logger.child({ component: "pod-label" }),
    onFailure: () => metrics.podLabelFailures.inc(),
  });
  election.on("elected", (lead: Leadership) =>
    label.want(lead.term === undefined ? undefined : { term: lead.term }),
  );
  election.on("demoted", () => label.want(undefined));
  return {
    async stop() {
      // The election has resigned: take the label off on the way out, but a Kubernetes API that does not
      // answer must not hold up the shutdown (the next primary clears it).
      label.want(undefined);
      await Promise.race([label.settled(), sleep(2000)]);
      await label.stop();
    },
  };
}

/** The agent: one per term, with its own Okta and SCIM clients, which end with it. */
export function startAgent(
  cfg: Config,
  cluster: ClusterSide,
  target: ReturnType<typeof agentScimTarget>,
  logger: Logger,
  metrics: Metrics,
): AgentRunner {
  const a = cfg.agent;
  const runner: AgentRunner = new AgentRunner({
    election: cluster.election,
    // What is in flight when the node stops may finish while the term is surely still ours.
    drainMs: cfg.cluster.etcd ? cfg.cluster.leaseTtlMs / 2 : 5000,
    stuckRetryMs: 2 * cfg.cluster.leaseTtlMs,
    logger,
    metrics,
    make: (lead, { halt, cancel }) => {
      const log = logger.child({ component: "agent", term: lead.term ?? null });
      const okta = new OktaClient({
        orgUrl: a.orgUrl!,
        token: a.apiToken!,
        metrics,
        // pino repeats a binding a child sets again: bind `component` once per logger.
        logger: logger.child({ component: "okta", term: lead.term ?? null }),
        halt,
        cancel,
      });
      const scim = new ScimClient({ ...target, logger: log, metrics, lead, halt, cancel });
      const agent = new Agent({
        lead,
        halt,
        okta,
        appId: a.appId!,
        scim,
        cursor: cluster.cursor,
        deadLetters: cluster.deadLetters,
        concurrency: a.concurrency,
        bulkOperations: a.bulkOperations,
        pollMs: a.pollMs,
        pageSize: a.pageSize,
        maxBatchEvents: a.maxBatchEvents,
        listThreshold: a.listThreshold,
        reconcileEveryMs: a.reconcileEveryMs,
        startAt: a.startAt,
        onFirstApplied: () => cluster.election?.firstEventProcessed(lead),
        onRoundDone: () => runner.roundSucceeded(),
        logger: log,
        metrics,
      });
      return {
        agent,
        close: async () => {
          await okta.close();
          await scim.close();
        },
      };
    },
  });
  runner.start();
  return runner;
}
