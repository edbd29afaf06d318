/** The validated configuration of a node (src/config/index.ts builds it). */
import type { CustomSchemaConfig } from "../scim/model/schema.js";

export interface AuthConfig {
  /** Set only by PROVISIOND_SCIM_AUTH=none. */
  disabled: boolean;
  bearerTokens: string[];
  basic?: { user: string; password: string };
  header?: { name: string; value: string };
  /** Where a generated token lives when no credential was configured. */
  generatedTokenFile?: string;
  /**
   * The agent credential: the only one whose fencing and idempotency headers the connector honours, so an
   * identity provider's credential can never move the fence. Configured, or generated in `agentTokenFile`.
   */
  agentToken?: string;
  agentTokenFile?: string;
}

export interface Config {
  nodeId: string;
  dataDir: string;
  logLevel: string;
  scim: {
    host: string;
    port: number;
    basePath: "/scim/v2";
    publicBaseUrl?: string;
    maxBodyBytes: number;
    maxResults: number;
    maxFilterLength: number;
    /** A list page holds the resources that fit in this many bytes (at least one). */
    maxPageBytes: number;
    /** Searches in multi-valued attributes (subqueries) one filter and sort may make. */
    maxFilterTerms: number;
    /** Operations a /Bulk request may carry; 0 turns /Bulk off. */
    bulkMaxOperations: number;
    passwordSync: boolean;
    /** How long agent Idempotency-Keys are remembered. */
    idempotencyRetentionHours: number;
    /** A client must have sent its request headers within this, and its whole request within requestTimeoutMs. */
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    /** Sockets beyond this are refused, so slow clients cannot take every file descriptor. */
    maxConnections: number;
  };
  admin: { host: string; port: number };
  tls?: { certFile: string; keyFile: string };
  auth: AuthConfig;
  store: {
    url: string;
    mysqlPoolSize: number;
    queryTimeoutMs: number;
    /** How long a starting node waits for the store to answer (PROVISIOND_STORE_CONNECT_TIMEOUT_MS; 0: not at all). */
    connectTimeoutMs: number;
    breaker: {
      timeoutMs: number;
      errorThresholdPercentage: number;
      volumeThreshold: number;
      resetTimeoutMs: number;
      rollingWindowMs: number;
    };
  };
  customSchema?: CustomSchemaConfig;
  cluster: {
    /** Unset: standalone, always primary. */
    etcd?: {
      endpoints: string[];
      username?: string;
      password?: string;
      caFile?: string;
      certFile?: string;
      keyFile?: string;
    };
    prefix: string;
    name: string;
    leaseTtlMs: number;
  };
  agent: AgentConfig;
  /** Set: this node labels its own pod `provisiond.io/role=primary` while primary, and clears stale peers'. */
  kubernetes?: {
    pod: string;
    /** The other pods of the StatefulSet, whose stale label a new primary clears. */
    peers: string[];
    /** Unset: the service account's namespace file. */
    namespace?: string;
  };
}

export interface AgentConfig {
  source: "okta" | "okta-sim" | "none";
  orgUrl?: string;
  apiToken?: string;
  appId?: string;
  /** The connector the agent drives; unset means this node's own. */
  scimUrl?: string;
  /** The agent credential of the connector at scimUrl; this node's own connector needs none configured. */
  scimToken?: string;
  scimCaFile?: string;
  concurrency: number;
  /** Writes per /Bulk request to a connector that supports it (0: one request per write). */
  bulkOperations: number;
  pollMs: number;
  pageSize: number;
  maxBatchEvents: number;
  listThreshold: number;
  startAt?: string;
  /** Reconcile with Okta this often on the primary (0: only on demand, with `provisiond reconcile`). */
  reconcileEveryMs: number;
}
