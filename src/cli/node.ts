/** Wires one node: config → store → SCIM server and admin server. Returns a handle that stops it cleanly. */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import type { Logger } from "pino";
import { Agent } from "../agent/agent.js";
import { OktaClient } from "../agent/okta-client.js";
import { AgentRunner } from "../agent/runner.js";
import { ScimClient } from "../agent/scim-client.js";
import { type Cursor, EtcdCursor, FileCursor } from "../cluster/cursor.js";
import { type DeadLetters, EtcdDeadLetters, FileDeadLetters } from "../cluster/dead-letters.js";
import { Election } from "../cluster/election.js";
import { etcdClient } from "../cluster/etcd.js";
import type { Config } from "../config/index.js";
import { createAdminServer } from "../observability/admin-server.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { GroupService } from "../scim/groups.js";
import { createScimApp } from "../scim/http/app.js";
import {
  customSchemaDef,
  enterpriseUserSchema,
  groupSchema,
  ResourceSchema,
  userSchema,
} from "../scim/model/schema.js";
import { UserService } from "../scim/users.js";
import { AppStore } from "../store/index.js";

export interface RunningNode {
  scimUrl: string;
  adminUrl: string;
  store: AppStore;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * Mozilla's "intermediate" configuration (ssl-config.mozilla.org, v5.7): forward-secret AEAD suites only for
 * TLS 1.2 (no static RSA key exchange, no CBC, no SHA-1), and TLS 1.3's three. Node's default list keeps the
 * older suites for compatibility with clients that SCIM callers are not.
 */
const INTERMEDIATE_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

/** Reads a generated bearer token, creating it (mode 0600) on first start. */
function generatedToken(file: string, logger: Logger): string {
  if (existsSync(file)) {
    const mode = statSync(file).mode & 0o077;
    if (mode !== 0) logger.warn({ file }, "a token file is readable by group or others; chmod 600 it");
    const t = readFileSync(file, "utf8").trim();
    if (t.length < 16)
      throw new Error(`the token in ${file} is shorter than 16 characters; delete the file to get a new one`);
    return t;
  }
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
  return token;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}

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
function startCluster(cfg: Config, logger: Logger, metrics: Metrics) {
  const root = `${cfg.cluster.prefix}/${cfg.cluster.name}`;
  if (!cfg.cluster.etcd) {
    return {
      election: undefined,
      cursor: new FileCursor(resolve(cfg.dataDir, "agent-cursor.json")) as Cursor,
      deadLetters: new FileDeadLetters(resolve(cfg.dataDir, "dead-letters.jsonl")) as DeadLetters,
      stop: async () => {},
    };
  }
  const client = etcdClient(cfg.cluster.etcd);
  const election = new Election({
    client,
    root,
    nodeId: cfg.nodeId,
    ttlMs: cfg.cluster.leaseTtlMs,
    logger: logger.child({ component: "election" }),
    metrics,
  });
  return {
    election,
    cursor: new EtcdCursor(client, `${root}/cursor`) as Cursor,
    deadLetters: new EtcdDeadLetters(client, `${root}/dead/`) as DeadLetters,
    stop: async () => {
      await election.stop();
      client.close();
    },
  };
}

type ClusterSide = ReturnType<typeof startCluster>;

/** The agent: one per term, with its own Okta and SCIM clients, which end with it. */
function startAgent(
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

export async function startNode(
  cfg: Config,
  opts: { logDestination?: import("pino").DestinationStream } = {},
): Promise<RunningNode> {
  const logger = createLogger({
    nodeId: cfg.nodeId,
    level: cfg.logLevel,
    ...(cfg.auth.header ? { secretHeaders: [cfg.auth.header.name] } : {}),
    ...(opts.logDestination ? { destination: opts.logDestination } : {}),
  });
  const metrics = new Metrics(cfg.nodeId);
  // Tokens, the cursor, dead letters and (by default) the database live here: private to the node's user.
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const extensions = [enterpriseUserSchema, ...(cfg.customSchema ? [customSchemaDef(cfg.customSchema)] : [])];
  const users = new ResourceSchema("User", "/Users", userSchema, extensions);
  const groupsRs = new ResourceSchema("Group", "/Groups", groupSchema);

  const store = await AppStore.open(
    {
      ...cfg.store,
      customColumns: (cfg.customSchema?.attributes ?? []).map((a) => ({
        urn: cfg.customSchema!.urn,
        attr: a.name,
        column: a.column,
        multiValued: a.multiValued ?? false,
        type: a.type,
      })),
    },
    users,
    metrics,
  );

  const agentToken = cfg.auth.agentToken ?? generatedToken(cfg.auth.agentTokenFile!, logger);
  const bearerTokens = [...cfg.auth.bearerTokens];
  if (cfg.auth.generatedTokenFile) {
    bearerTokens.push(generatedToken(cfg.auth.generatedTokenFile, logger));
    logger.info(
      { tokenFile: cfg.auth.generatedTokenFile },
      "no SCIM credential configured: a bearer token was generated; read it from the token file",
    );
  }
  if (bearerTokens.includes(agentToken))
    throw new Error(
      "the agent credential equals a SCIM bearer token (a generated one?): delete the data dir's agent-token, or set PROVISIOND_SCIM_AGENT_TOKEN to a secret of its own",
    );
  if (cfg.auth.disabled) {
    logger.warn(
      "SCIM AUTHENTICATION IS OFF (PROVISIOND_SCIM_AUTH=none): anyone who reaches this port can create, change and delete users",
    );
  }

  const app = createScimApp(
    {
      auth: cfg.auth,
      bearerTokens,
      agentToken,
      maxBodyBytes: cfg.scim.maxBodyBytes,
      bulkMaxOperations: cfg.scim.bulkMaxOperations,
      limits: {
        maxResults: cfg.scim.maxResults,
        maxFilterLength: cfg.scim.maxFilterLength,
        maxPageBytes: cfg.scim.maxPageBytes,
        maxFilterTerms: cfg.scim.maxFilterTerms,
      },
      passwordSync: cfg.scim.passwordSync,
      ...(cfg.scim.publicBaseUrl ? { publicBaseUrl: cfg.scim.publicBaseUrl } : {}),
    },
    {
      store,
      users: new UserService(store, users, cfg.scim.passwordSync),
      groups: new GroupService(store, groupsRs),
      metrics,
      logger,
    },
  );
  // Node enforces the request timeouts below only when it checks its connections: check often enough.
  const checking = { connectionsCheckingInterval: Math.min(1000, cfg.scim.headersTimeoutMs) };
  const scimServer = cfg.tls
    ? createHttpsServer(
        {
          ...checking,
          cert: readFileSync(cfg.tls.certFile),
          key: readFileSync(cfg.tls.keyFile),
          minVersion: "TLSv1.2",
          ciphers: INTERMEDIATE_CIPHERS,
          honorCipherOrder: false,
        },
        app,
      )
    : createHttpServer(checking, app);
  // Okta and Entra keep connections open between requests; outlive their idle timeouts. A request itself must
  // arrive promptly, so clients trickling headers or a body cannot hold sockets for minutes.
  scimServer.keepAliveTimeout = 65_000;
  scimServer.headersTimeout = cfg.scim.headersTimeoutMs;
  scimServer.requestTimeout = Math.max(cfg.scim.requestTimeoutMs, cfg.scim.headersTimeoutMs);
  scimServer.maxConnections = cfg.scim.maxConnections;

  const startedAt = new Date().toISOString();
  const cluster = startCluster(cfg, logger, metrics);
  let runner: AgentRunner | undefined;
  const admin = createAdminServer({
    metrics,
    ready: async (query) => {
      if (query.get("role") === "primary" && !(cluster.election ? cluster.election.isPrimary() : true)) {
        throw new Error(`this node is ${cluster.election?.role ?? "standalone"}, not the primary`);
      }
      await store.ping();
    },
    status: async () => {
      const agent = runner?.current;
      const cursor = agent?.cursor ?? (await cluster.cursor.read().catch(() => undefined));
      const dead = await cluster.deadLetters.recent(5).catch(() => ({ total: null, items: [] }));
      const el = cluster.election?.status();
      return {
        nodeId: cfg.nodeId,
        role: el?.role ?? "standalone",
        leaderId: el ? el.leaderId : cfg.nodeId,
        term: el?.term ?? null,
        since: el?.since ?? startedAt,
        lease: el?.lease ?? null,
        cursor: cursor
          ? { published: cursor.published ?? null, updatedAt: cursor.updatedAt, term: cursor.term ?? null }
          : null,
        eventLagSeconds: agent?.lastAppliedPublished
          ? Math.max(0, (Date.now() - Date.parse(agent.lastAppliedPublished)) / 1000)
          : null,
        agent: {
          source: cfg.agent.source,
          running: agent !== undefined,
          term: agent?.lead.term ?? null,
          trouble: runner?.trouble ?? null,
          fenceAhead: runner?.fenceAhead ?? null,
          lastDeposed: runner?.lastDeposed ?? null,
        },
        breaker: store.breaker.status(),
        failovers: cluster.election?.failovers ?? [],
        deadLetters: dead,
        store: { kind: store.kind },
        startedAt,
      };
    },
  });

  // Idempotency keys only need to outlive any replay: a failover, an agent retry. Forget old ones hourly.
  const purge = async () => {
    const before = new Date(Date.now() - cfg.scim.idempotencyRetentionHours * 3_600_000);
    try {
      const n = await store.purgeIdempotency(before);
      if (n > 0) logger.info({ purged: n, before: before.toISOString() }, "forgot old idempotency keys");
    } catch (err) {
      logger.warn({ err }, "could not purge old idempotency keys; will retry");
    }
  };
  const purgeTimer = setInterval(() => void purge(), 3_600_000);
  purgeTimer.unref();

  const scimAddr = await listen(scimServer, cfg.scim.port, cfg.scim.host);
  const adminAddr = await listen(admin, cfg.admin.port, cfg.admin.host);
  const host = (a: AddressInfo) => (a.address === "0.0.0.0" || a.address === "::" ? "localhost" : a.address);
  const scimUrl = `${cfg.tls ? "https" : "http"}://${host(scimAddr)}:${scimAddr.port}/scim/v2/`;
  const adminUrl = `http://${host(adminAddr)}:${adminAddr.port}`;
  logger.info({ scimUrl, adminUrl, store: store.kind, tls: Boolean(cfg.tls) }, "provisiond node started");

  if (cluster.election) await cluster.election.start();
  if (cfg.agent.source !== "none")
    runner = startAgent(cfg, cluster, agentScimTarget(cfg, scimAddr.port, agentToken), logger, metrics);

  return {
    scimUrl,
    adminUrl,
    store,
    logger,
    async stop() {
      clearInterval(purgeTimer);
      // Graceful handover: stop taking events and let (or make) the agent's requests end, then resign, so a
      // standby wins at once and nothing of this term is still on its way to the store.
      await runner?.stop();
      await cluster.stop();
      await Promise.all(
        [scimServer, admin].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
            }),
        ),
      );
      await store.close();
    },
  };
}
