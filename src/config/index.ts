/**
 * Turns the environment (and an optional JSON file that mirrors it) into one validated object. Every problem
 * stops startup with one line that names the variable and says what to fix.
 */
import { hostname } from "node:os";
import { resolve } from "node:path";
import { agentConfig } from "./agent.js";
import { auth } from "./auth.js";
import { clusterConfig } from "./cluster.js";
import { customSchema } from "./custom-schema.js";
import { refuseUnknown } from "./known.js";
import { kubernetesConfig } from "./kubernetes.js";
import { ConfigError, type Env, Reader, withConfigFile } from "./reader.js";
import { storeConfig } from "./store.js";
import type { Config } from "./types.js";

export { ConfigError } from "./reader.js";
export type { AgentConfig, AuthConfig, Config } from "./types.js";

export function loadConfig(rawEnv: Env = process.env): Config {
  refuseUnknown(Object.keys(rawEnv), "set in the environment");
  const env = withConfigFile(rawEnv);
  // The environment has passed: whatever else is unknown came from the file.
  refuseUnknown(Object.keys(env), `a key of ${rawEnv.PROVISIOND_CONFIG_FILE}`);
  const r = new Reader(env);
  const dataDir = resolve(r.str("PROVISIOND_DATA_DIR", "./data"));
  const certFile = r.raw("PROVISIOND_TLS_CERT_FILE");
  const keyFile = r.raw("PROVISIOND_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(
      certFile ? "PROVISIOND_TLS_KEY_FILE" : "PROVISIOND_TLS_CERT_FILE",
      "TLS needs both a certificate and a key file",
    );
  }
  const publicBaseUrl = r.raw("PROVISIOND_PUBLIC_BASE_URL");
  if (publicBaseUrl !== undefined && !/^https?:\/\/[^/]+/.test(publicBaseUrl)) {
    throw new ConfigError(
      "PROVISIOND_PUBLIC_BASE_URL",
      "must be an http(s) URL such as https://scim.example.com",
    );
  }
  const scimPort = r.int("PROVISIOND_SCIM_PORT", 8080, 0, 65535);
  const adminPort = r.int("PROVISIOND_ADMIN_PORT", 9464, 0, 65535);
  if (scimPort !== 0 && scimPort === adminPort)
    throw new ConfigError("PROVISIOND_ADMIN_PORT", `must differ from PROVISIOND_SCIM_PORT (${scimPort})`);
  const cluster = clusterConfig(r);
  const store = storeConfig(r, dataDir, cluster);
  const cfg: Config = {
    nodeId: r.str("PROVISIOND_NODE_ID", hostname()),
    dataDir,
    logLevel: r.oneOf("PROVISIOND_LOG_LEVEL", "info", [
      "fatal",
      "error",
      "warn",
      "info",
      "debug",
      "trace",
      "silent",
    ] as const),
    scim: {
      host: r.str("PROVISIOND_SCIM_HOST", "0.0.0.0"),
      port: scimPort,
      basePath: "/scim/v2",
      ...(publicBaseUrl ? { publicBaseUrl: publicBaseUrl.replace(/\/+$/, "") } : {}),
      maxBodyBytes: r.int("PROVISIOND_SCIM_MAX_BODY_BYTES", 1_048_576, 1024, 64 * 1_048_576),
      maxResults: r.int("PROVISIOND_SCIM_MAX_RESULTS", 1000, 1, 10_000),
      maxFilterLength: r.int("PROVISIOND_SCIM_MAX_FILTER_LENGTH", 4096, 64, 65_536),
      maxPageBytes: r.int("PROVISIOND_SCIM_MAX_PAGE_BYTES", 8 * 1_048_576, 65_536, 256 * 1_048_576),
      maxFilterTerms: r.int("PROVISIOND_SCIM_MAX_FILTER_TERMS", 8, 1, 1000),
      bulkMaxOperations: r.int("PROVISIOND_SCIM_BULK_MAX_OPERATIONS", 1000, 0, 10_000),
      passwordSync: r.bool("PROVISIOND_PASSWORD_SYNC", false),
      idempotencyRetentionHours: r.int("PROVISIOND_IDEMPOTENCY_RETENTION_HOURS", 168, 1, 24 * 366),
      headersTimeoutMs: r.int("PROVISIOND_SCIM_HEADERS_TIMEOUT_MS", 15_000, 100, 60_000),
      requestTimeoutMs: r.int("PROVISIOND_SCIM_REQUEST_TIMEOUT_MS", 30_000, 1000, 600_000),
      maxConnections: r.int("PROVISIOND_SCIM_MAX_CONNECTIONS", 1024, 1, 65_536),
    },
    // Loopback unless told otherwise: /status lists dead letters, whose reasons can name users.
    admin: { host: r.str("PROVISIOND_ADMIN_HOST", "127.0.0.1"), port: adminPort },
    auth: auth(r, dataDir),
    cluster,
    agent: agentConfig(r),
    store,
  };
  if (cluster.etcd && cfg.auth.generatedTokenFile)
    throw new ConfigError(
      "PROVISIOND_SCIM_TOKEN",
      "a cluster's nodes must all accept the same SCIM credential, and a token each node generates for itself would differ (a load balancer would send Okta to a node that refuses it): set PROVISIOND_SCIM_TOKEN (or _FILE) to the same secret on every node, or use Basic or header credentials",
    );
  if (certFile && keyFile) cfg.tls = { certFile, keyFile };
  const kubernetes = kubernetesConfig(r, cfg.nodeId, cluster);
  if (kubernetes) cfg.kubernetes = kubernetes;
  const custom = customSchema(r);
  if (custom) cfg.customSchema = custom;
  return cfg;
}
