/** The connector side of a node: the app store, the SCIM server over it, and the store's upkeep. */
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import type { Metrics } from "../observability/metrics.js";
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
import type { Credentials } from "./credentials.js";

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

/** The store, migrated, with the configured custom attribute columns. */
export async function openStore(
  cfg: Config,
  metrics: Metrics,
): Promise<{ store: AppStore; users: ResourceSchema }> {
  const extensions = [enterpriseUserSchema, ...(cfg.customSchema ? [customSchemaDef(cfg.customSchema)] : [])];
  const users = new ResourceSchema("User", "/Users", userSchema, extensions);
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
  return { store, users };
}

/** The SCIM server (not yet listening): HTTPS when a certificate is configured, with its timeouts and limits. */
export function createScimServer(
  cfg: Config,
  store: AppStore,
  users: ResourceSchema,
  creds: Credentials,
  metrics: Metrics,
  logger: Logger,
): Server {
  const app = createScimApp(
    {
      auth: cfg.auth,
      bearerTokens: creds.bearerTokens,
      agentToken: creds.agentToken,
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
      groups: new GroupService(store, new ResourceSchema("Group", "/Groups", groupSchema)),
      metrics,
      logger,
    },
  );
  // Node enforces the request timeouts below only when it checks its connections: check often enough.
  const checking = { connectionsCheckingInterval: Math.min(1000, cfg.scim.headersTimeoutMs) };
  const server = cfg.tls
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
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = cfg.scim.headersTimeoutMs;
  server.requestTimeout = Math.max(cfg.scim.requestTimeoutMs, cfg.scim.headersTimeoutMs);
  server.maxConnections = cfg.scim.maxConnections;
  return server;
}

/**
 * Idempotency keys only need to outlive any replay (a failover, an agent retry): old ones are forgotten hourly.
 * Returns the timer's stop.
 */
export function purgeIdempotencyHourly(store: AppStore, retentionHours: number, logger: Logger): () => void {
  const purge = async () => {
    const before = new Date(Date.now() - retentionHours * 3_600_000);
    try {
      const n = await store.purgeIdempotency(before);
      if (n > 0) logger.info({ purged: n, before: before.toISOString() }, "forgot old idempotency keys");
    } catch (err) {
      logger.warn({ err }, "could not purge old idempotency keys; will retry");
    }
  };
  const timer = setInterval(() => void purge(), 3_600_000);
  timer.unref();
  return () => clearInterval(timer);
}
