/**
 * Turns the environment (and an optional JSON file that mirrors it) into one validated object. Every problem
 * stops startup with one line that names the variable and says what to fix.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import type { CustomSchemaConfig } from "../scim/schema.js";

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

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

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/;

function agentConfig(r: Reader): AgentConfig {
  const source = r.oneOf("PROVISIOND_AGENT_SOURCE", "none", ["okta", "okta-sim", "none"] as const);
  const cfg: AgentConfig = {
    source,
    concurrency: r.int("PROVISIOND_AGENT_CONCURRENCY", 8, 1, 256),
    bulkOperations: r.int("PROVISIOND_AGENT_BULK_OPERATIONS", 500, 0, 10_000),
    pollMs: r.int("PROVISIOND_AGENT_POLL_MS", source === "okta" ? 5000 : 250, 50, 600_000),
    pageSize: r.int("PROVISIOND_AGENT_PAGE_SIZE", 1000, 1, 1000),
    maxBatchEvents: r.int("PROVISIOND_AGENT_MAX_BATCH_EVENTS", 20_000, 1, 1_000_000),
    listThreshold: r.int("PROVISIOND_AGENT_LIST_THRESHOLD", 50, 0, 1_000_000),
    reconcileEveryMs: r.int("PROVISIOND_AGENT_RECONCILE_EVERY_MS", 0, 0, 7 * 86_400_000),
  };
  if (source === "none") return cfg;
  const orgUrl = r.raw("PROVISIOND_OKTA_ORG_URL");
  if (!orgUrl)
    throw new ConfigError(
      "PROVISIOND_OKTA_ORG_URL",
      `is required when PROVISIOND_AGENT_SOURCE=${source}, e.g. https://example.okta.com`,
    );
  let u: URL;
  try {
    u = new URL(orgUrl);
  } catch {
    throw new ConfigError("PROVISIOND_OKTA_ORG_URL", "is not a URL; expected https://<org>.okta.com");
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && LOOPBACK.test(u.hostname))) {
    throw new ConfigError(
      "PROVISIOND_OKTA_ORG_URL",
      "must use https (plain http is allowed only on a loopback address, for the simulator)",
    );
  }
  const apiToken = r.secret("PROVISIOND_OKTA_API_TOKEN");
  if (!apiToken)
    throw new ConfigError("PROVISIOND_OKTA_API_TOKEN", "is required (an Okta API token, sent as SSWS)");
  const appId = r.raw("PROVISIOND_OKTA_APP_ID");
  if (!appId || !/^[A-Za-z0-9]{1,64}$/.test(appId))
    throw new ConfigError("PROVISIOND_OKTA_APP_ID", "must be the Okta app's id, e.g. 0oa1b2c3d4EXAMPLE");
  cfg.orgUrl = u.origin;
  cfg.apiToken = apiToken;
  cfg.appId = appId;
  const scimUrl = r.raw("PROVISIOND_AGENT_SCIM_URL");
  if (scimUrl !== undefined) {
    if (!/^https?:\/\/[^/]+\/.*scim\/v2\/?$/.test(scimUrl))
      throw new ConfigError("PROVISIOND_AGENT_SCIM_URL", "must be a SCIM base URL ending in /scim/v2");
    cfg.scimUrl = scimUrl;
  }
  const scimToken = r.secret("PROVISIOND_AGENT_SCIM_TOKEN");
  if (scimToken !== undefined && scimUrl === undefined)
    throw new ConfigError(
      "PROVISIOND_AGENT_SCIM_TOKEN",
      "is for a connector elsewhere (with PROVISIOND_AGENT_SCIM_URL); this node's agent already holds its own connector's agent credential (PROVISIOND_SCIM_AGENT_TOKEN)",
    );
  // Without one the agent would send its own connector's credential to another server.
  if (scimUrl !== undefined && !scimToken)
    throw new ConfigError(
      "PROVISIOND_AGENT_SCIM_TOKEN",
      "is required with PROVISIOND_AGENT_SCIM_URL: the agent credential of that connector (its PROVISIOND_SCIM_AGENT_TOKEN)",
    );
  if (scimToken) cfg.scimToken = scimToken;
  const ca = r.raw("PROVISIOND_AGENT_SCIM_CA_FILE");
  if (ca) cfg.scimCaFile = ca;
  const startAt = r.raw("PROVISIOND_AGENT_START_AT");
  if (startAt !== undefined) {
    if (Number.isNaN(Date.parse(startAt)))
      throw new ConfigError("PROVISIOND_AGENT_START_AT", "must be an ISO 8601 time");
    cfg.startAt = new Date(startAt).toISOString();
  }
  return cfg;
}

function clusterConfig(r: Reader): Config["cluster"] {
  const endpoints = r.raw("PROVISIOND_ETCD_ENDPOINTS");
  const prefix = r.str("PROVISIOND_ETCD_PREFIX", "/provisiond");
  if (!/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/.test(prefix))
    throw new ConfigError("PROVISIOND_ETCD_PREFIX", "must be a key prefix like /provisiond");
  const name = r.str("PROVISIOND_CLUSTER", "default");
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
    throw new ConfigError("PROVISIOND_CLUSTER", "must be 1-64 letters, digits, '.', '_' or '-'");
  const leaseTtlMs = r.int("PROVISIOND_LEASE_TTL_MS", 5000, 2000, 600_000);
  if (leaseTtlMs % 1000 !== 0)
    throw new ConfigError(
      "PROVISIOND_LEASE_TTL_MS",
      "must be whole seconds (etcd leases have second granularity), e.g. 2000 or 5000",
    );
  const out: Config["cluster"] = { prefix, name, leaseTtlMs };
  if (endpoints !== undefined) {
    const list = endpoints
      .split(",")
      .map((e) => e.trim())
      .filter(Boolean);
    for (const e of list) {
      if (!/^(https?:\/\/)?[^\s/:]+:\d+$/.test(e))
        throw new ConfigError("PROVISIOND_ETCD_ENDPOINTS", `"${e}" is not host:port`);
    }
    const etcd: NonNullable<Config["cluster"]["etcd"]> = { endpoints: list };
    const user = r.raw("PROVISIOND_ETCD_USERNAME");
    const pass = r.secret("PROVISIOND_ETCD_PASSWORD");
    if ((user === undefined) !== (pass === undefined))
      throw new ConfigError(
        "PROVISIOND_ETCD_PASSWORD",
        "etcd auth needs both PROVISIOND_ETCD_USERNAME and PROVISIOND_ETCD_PASSWORD",
      );
    if (user && pass) Object.assign(etcd, { username: user, password: pass });
    for (const [k, v] of [
      ["caFile", "PROVISIOND_ETCD_CA_FILE"],
      ["certFile", "PROVISIOND_ETCD_CERT_FILE"],
      ["keyFile", "PROVISIOND_ETCD_KEY_FILE"],
    ] as const) {
      const f = r.raw(v);
      if (f) etcd[k] = f;
    }
    out.etcd = etcd;
  }
  return out;
}

/**
 * The store settings. In a cluster every store transaction must end within TTL/2 (DESIGN.md, "one term, one
 * writer"): a deposed primary's last write can then never outlive the demotion that stopped it, and a new
 * primary's raise of the fence never waits on it for long. So the transaction deadline (the breaker timeout)
 * and the per-statement timeout default to 40% of the TTL there, and larger values are refused.
 */
function storeConfig(r: Reader, dataDir: string, cluster: Config["cluster"]): Config["store"] {
  const url = storeUrl(r, dataDir);
  if (cluster.etcd && url.startsWith("sqlite:")) {
    throw new ConfigError(
      "PROVISIOND_STORE_URL",
      "a cluster (PROVISIOND_ETCD_ENDPOINTS is set) needs one shared store: set PROVISIOND_STORE_URL=mysql://…; with the embedded SQLite store every node would write to its own file",
    );
  }
  const bound = cluster.etcd ? cluster.leaseTtlMs / 2 : undefined;
  const fallback = bound === undefined ? 10_000 : Math.floor(cluster.leaseTtlMs * 0.4);
  const timeoutMs = r.int("PROVISIOND_BREAKER_TIMEOUT_MS", fallback, 100, 600_000);
  if (bound !== undefined && timeoutMs >= bound)
    throw new ConfigError(
      "PROVISIOND_BREAKER_TIMEOUT_MS",
      `must be below half of PROVISIOND_LEASE_TTL_MS (${bound} ms) in a cluster, so no store transaction outlives a term; got ${timeoutMs}`,
    );
  const queryTimeoutMs = r.int(
    "PROVISIOND_STORE_QUERY_TIMEOUT_MS",
    Math.min(10_000, timeoutMs),
    100,
    600_000,
  );
  if (bound !== undefined && queryTimeoutMs > timeoutMs)
    throw new ConfigError(
      "PROVISIOND_STORE_QUERY_TIMEOUT_MS",
      `must not exceed PROVISIOND_BREAKER_TIMEOUT_MS (${timeoutMs} ms) in a cluster; got ${queryTimeoutMs}`,
    );
  return {
    url,
    mysqlPoolSize: r.int("PROVISIOND_STORE_POOL_SIZE", 10, 1, 500),
    queryTimeoutMs,
    breaker: {
      timeoutMs,
      errorThresholdPercentage: r.int("PROVISIOND_BREAKER_ERROR_THRESHOLD_PERCENT", 50, 1, 100),
      volumeThreshold: r.int("PROVISIOND_BREAKER_VOLUME_THRESHOLD", 5, 1, 10_000),
      resetTimeoutMs: r.int("PROVISIOND_BREAKER_RESET_MS", 10_000, 100, 600_000),
      rollingWindowMs: r.int("PROVISIOND_BREAKER_WINDOW_MS", 10_000, 1000, 600_000),
    },
  };
}

type Env = Record<string, string | undefined>;

class Reader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === "" ? undefined : v;
  }

  str(name: string, def: string): string {
    return this.raw(name) ?? def;
  }

  /** A secret from NAME or from the file NAME_FILE names (one of them, not both). */
  secret(name: string): string | undefined {
    const direct = this.raw(name);
    const file = this.raw(`${name}_FILE`);
    if (direct !== undefined && file !== undefined)
      throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
    if (file === undefined) return direct;
    try {
      const v = readFileSync(file, "utf8").trim();
      if (!v) throw new ConfigError(`${name}_FILE`, `the file ${file} is empty`);
      return v;
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(
        `${name}_FILE`,
        `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }

  int(name: string, def: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (!/^-?\d+$/.test(v.trim())) throw new ConfigError(name, `must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  bool(name: string, def: boolean): boolean {
    const v = this.raw(name)?.toLowerCase();
    if (v === undefined) return def;
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    throw new ConfigError(name, `must be true or false, got "${v}"`);
  }

  oneOf<T extends string>(name: string, def: T, allowed: readonly T[]): T {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (!(allowed as readonly string[]).includes(v))
      throw new ConfigError(name, `must be one of ${allowed.join(", ")}, got "${v}"`);
    return v as T;
  }
}

/** A JSON config file's keys are the environment variable names; the environment wins over the file. */
function withConfigFile(env: Env): Env {
  const file = env.PROVISIOND_CONFIG_FILE;
  if (!file) return env;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(
      "PROVISIOND_CONFIG_FILE",
      `cannot read ${file} as JSON (${(err as Error).message})`,
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError("PROVISIOND_CONFIG_FILE", "must hold a JSON object of PROVISIOND_* keys");
  }
  const out: Env = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!k.startsWith("PROVISIOND_")) throw new ConfigError("PROVISIOND_CONFIG_FILE", `unknown key "${k}"`);
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return { ...out, ...env };
}

function storeUrl(r: Reader, dataDir: string): string {
  // A secret: a MySQL URL carries the password, so it may come from PROVISIOND_STORE_URL_FILE.
  const url = r.secret("PROVISIOND_STORE_URL") ?? `sqlite:${resolve(dataDir, "provisiond.db")}`;
  if (url.startsWith("sqlite:")) {
    if (url.length === "sqlite:".length)
      throw new ConfigError(
        "PROVISIOND_STORE_URL",
        "sqlite: needs a file path, e.g. sqlite:./data/provisiond.db",
      );
    return url;
  }
  if (url.startsWith("mysql://")) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(
        "PROVISIOND_STORE_URL",
        "is not a valid URL; expected mysql://user:pass@host:port/db",
      );
    }
    if (!u.hostname || u.pathname.length <= 1) {
      throw new ConfigError(
        "PROVISIOND_STORE_URL",
        "must name a host and a database: mysql://user:pass@host:port/db",
      );
    }
    return url;
  }
  throw new ConfigError("PROVISIOND_STORE_URL", "must start with mysql:// or sqlite:");
}

const URN_RE = /^urn:[a-z0-9][a-z0-9-]{0,31}:[a-z0-9()+,\-.:=@;$_!*'%/?#]+$/i;
const COLUMN_RE = /^[a-z_][a-z0-9_]{0,63}$/;
const RESERVED_COLUMNS = new Set([
  "seq",
  "id",
  "user_name",
  "user_name_ci",
  "external_id",
  "display_name",
  "given_name",
  "family_name",
  "email",
  "active",
  "created",
  "last_modified",
  "version",
  "doc",
  "password_hash",
]);

function customSchema(r: Reader): CustomSchemaConfig | undefined {
  const file = r.raw("PROVISIOND_CUSTOM_SCHEMA_FILE");
  const inline = r.raw("PROVISIOND_CUSTOM_SCHEMA");
  const name = file ? "PROVISIOND_CUSTOM_SCHEMA_FILE" : "PROVISIOND_CUSTOM_SCHEMA";
  if (!file && !inline) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(file ? readFileSync(file, "utf8") : inline!);
  } catch (err) {
    throw new ConfigError(name, `is not readable JSON (${(err as Error).message})`);
  }
  const cfg = parsed as Partial<CustomSchemaConfig>;
  const urn = cfg.urn ?? "urn:ietf:params:scim:schemas:extension:provisiond:2.0:User";
  if (!URN_RE.test(urn)) throw new ConfigError(name, `"${urn}" is not a URN`);
  if (!Array.isArray(cfg.attributes) || cfg.attributes.length === 0) {
    throw new ConfigError(name, `needs a non-empty "attributes" array`);
  }
  const seen = new Set<string>();
  for (const a of cfg.attributes) {
    if (!a || typeof a.name !== "string" || !/^[A-Za-z][A-Za-z0-9_-]*$/.test(a.name)) {
      throw new ConfigError(name, `attribute ${JSON.stringify(a?.name)} needs a name like "costCenter"`);
    }
    if (!["string", "boolean", "integer", "decimal", "dateTime"].includes(a.type)) {
      throw new ConfigError(
        name,
        `attribute "${a.name}": type must be string, boolean, integer, decimal or dateTime`,
      );
    }
    if (typeof a.column !== "string" || !COLUMN_RE.test(a.column) || RESERVED_COLUMNS.has(a.column)) {
      throw new ConfigError(
        name,
        `attribute "${a.name}": "column" must be a new lower-case SQL identifier (e.g. "cost_center")`,
      );
    }
    if (seen.has(a.name.toLowerCase()) || seen.has(`col:${a.column}`)) {
      throw new ConfigError(name, `attribute "${a.name}" or its column is defined twice`);
    }
    seen.add(a.name.toLowerCase());
    seen.add(`col:${a.column}`);
  }
  if (cfg.attributes.every((a) => a.multiValued)) {
    throw new ConfigError(
      name,
      "every attribute is multi-valued; Okta rejects a custom schema with only array attributes, so add at least one single-valued attribute",
    );
  }
  return { urn, ...(cfg.name ? { name: cfg.name } : {}), attributes: cfg.attributes };
}

function auth(r: Reader, dataDir: string): AuthConfig {
  const mode = r.oneOf("PROVISIOND_SCIM_AUTH", "on", ["on", "none"] as const);
  const token = r.secret("PROVISIOND_SCIM_TOKEN");
  const basicUser = r.raw("PROVISIOND_SCIM_BASIC_USER");
  const basicPassword = r.secret("PROVISIOND_SCIM_BASIC_PASSWORD");
  const headerName = r.raw("PROVISIOND_SCIM_HEADER_NAME");
  const headerValue = r.secret("PROVISIOND_SCIM_HEADER_VALUE");
  if (mode === "none") {
    if (token || basicUser || headerName) {
      throw new ConfigError(
        "PROVISIOND_SCIM_AUTH",
        "is none, yet credentials are configured; remove one or the other",
      );
    }
    return { disabled: true, bearerTokens: [], ...agentCredential(r, dataDir, []) };
  }
  if ((basicUser === undefined) !== (basicPassword === undefined)) {
    throw new ConfigError(
      basicUser === undefined ? "PROVISIOND_SCIM_BASIC_USER" : "PROVISIOND_SCIM_BASIC_PASSWORD",
      "Basic authentication needs both PROVISIOND_SCIM_BASIC_USER and PROVISIOND_SCIM_BASIC_PASSWORD",
    );
  }
  if (basicUser?.includes(":")) throw new ConfigError("PROVISIOND_SCIM_BASIC_USER", "must not contain ':'");
  if ((headerName === undefined) !== (headerValue === undefined)) {
    throw new ConfigError(
      headerName === undefined ? "PROVISIOND_SCIM_HEADER_NAME" : "PROVISIOND_SCIM_HEADER_VALUE",
      "the custom header mode needs both PROVISIOND_SCIM_HEADER_NAME and PROVISIOND_SCIM_HEADER_VALUE",
    );
  }
  if (headerName !== undefined && !/^[A-Za-z0-9-]+$/.test(headerName)) {
    throw new ConfigError(
      "PROVISIOND_SCIM_HEADER_NAME",
      "must be an HTTP header name (letters, digits, '-')",
    );
  }
  if (headerName?.toLowerCase() === "authorization") {
    throw new ConfigError(
      "PROVISIOND_SCIM_HEADER_NAME",
      "use PROVISIOND_SCIM_TOKEN or the Basic variables for Authorization",
    );
  }
  const secrets = [
    ["PROVISIOND_SCIM_TOKEN", token],
    ["PROVISIOND_SCIM_BASIC_PASSWORD", basicPassword],
    ["PROVISIOND_SCIM_HEADER_VALUE", headerValue],
  ] as const;
  for (const [n, v] of secrets) {
    if (v !== undefined && v.length < 16)
      throw new ConfigError(n, "is shorter than 16 characters; use a long random secret");
  }
  const cfg: AuthConfig = {
    disabled: false,
    bearerTokens: token ? [token] : [],
    ...agentCredential(r, dataDir, secrets),
  };
  if (basicUser && basicPassword) cfg.basic = { user: basicUser, password: basicPassword };
  if (headerName && headerValue) cfg.header = { name: headerName.toLowerCase(), value: headerValue };
  if (!token && !cfg.basic && !cfg.header) cfg.generatedTokenFile = resolve(dataDir, "scim-token");
  return cfg;
}

/** The agent credential, configured or else generated in the data dir; never one an identity provider holds. */
function agentCredential(
  r: Reader,
  dataDir: string,
  idpSecrets: readonly (readonly [string, string | undefined])[],
): Pick<AuthConfig, "agentToken" | "agentTokenFile"> {
  const agentToken = r.secret("PROVISIOND_SCIM_AGENT_TOKEN");
  if (agentToken === undefined) return { agentTokenFile: resolve(dataDir, "agent-token") };
  if (agentToken.length < 16)
    throw new ConfigError(
      "PROVISIOND_SCIM_AGENT_TOKEN",
      "is shorter than 16 characters; use a long random secret",
    );
  for (const [n, v] of idpSecrets) {
    if (v === agentToken)
      throw new ConfigError(
        "PROVISIOND_SCIM_AGENT_TOKEN",
        `equals ${n}: the agent credential must be its own, or an identity provider could move the fence`,
      );
  }
  return { agentToken };
}

export function loadConfig(rawEnv: Env = process.env): Config {
  const env = withConfigFile(rawEnv);
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
  if (certFile && keyFile) cfg.tls = { certFile, keyFile };
  const custom = customSchema(r);
  if (custom) cfg.customSchema = custom;
  return cfg;
}
