/**
 * Every PROVISIOND_* name there is, so that a typo stops startup instead of being ignored
 * (a misspelt token variable would otherwise fall back to a generated token). test/unit/config.test.ts checks this
 * list against the names src/ reads.
 */
import { closest, distance } from "fastest-levenshtein";
import { ConfigError } from "./reader.js";

/** Settings read by a node or the CLI. */
const SETTINGS = [
  "PROVISIOND_ADMIN_HOST",
  "PROVISIOND_ADMIN_PORT",
  "PROVISIOND_AGENT_BULK_OPERATIONS",
  "PROVISIOND_AGENT_CONCURRENCY",
  "PROVISIOND_AGENT_LIST_THRESHOLD",
  "PROVISIOND_AGENT_MAX_BATCH_EVENTS",
  "PROVISIOND_AGENT_PAGE_SIZE",
  "PROVISIOND_AGENT_POLL_MS",
  "PROVISIOND_AGENT_RECONCILE_EVERY_MS",
  "PROVISIOND_AGENT_SCIM_CA_FILE",
  "PROVISIOND_AGENT_SCIM_URL",
  "PROVISIOND_AGENT_SOURCE",
  "PROVISIOND_AGENT_START_AT",
  "PROVISIOND_BREAKER_ERROR_THRESHOLD_PERCENT",
  "PROVISIOND_BREAKER_RESET_MS",
  "PROVISIOND_BREAKER_TIMEOUT_MS",
  "PROVISIOND_BREAKER_VOLUME_THRESHOLD",
  "PROVISIOND_BREAKER_WINDOW_MS",
  "PROVISIOND_CLUSTER",
  "PROVISIOND_CONFIG_FILE",
  "PROVISIOND_CUSTOM_SCHEMA",
  "PROVISIOND_CUSTOM_SCHEMA_FILE",
  "PROVISIOND_DATA_DIR",
  "PROVISIOND_ETCD_CA_FILE",
  "PROVISIOND_ETCD_CERT_FILE",
  "PROVISIOND_ETCD_ENDPOINTS",
  "PROVISIOND_ETCD_KEY_FILE",
  "PROVISIOND_ETCD_PREFIX",
  "PROVISIOND_ETCD_USERNAME",
  "PROVISIOND_IDEMPOTENCY_RETENTION_HOURS",
  "PROVISIOND_KUBERNETES_NAMESPACE",
  "PROVISIOND_KUBERNETES_PEER_PODS",
  "PROVISIOND_KUBERNETES_POD",
  "PROVISIOND_KUBERNETES_ROLE_LABEL",
  "PROVISIOND_LEASE_TTL_MS",
  "PROVISIOND_LOG_LEVEL",
  "PROVISIOND_NODE_ID",
  "PROVISIOND_OKTA_APP_ID",
  "PROVISIOND_OKTA_ORG_URL",
  "PROVISIOND_OKTA_SIM_APP_ID",
  "PROVISIOND_OKTA_SIM_HOST",
  "PROVISIOND_OKTA_SIM_PORT",
  "PROVISIOND_OKTA_SIM_TOKEN",
  "PROVISIOND_PASSWORD_SYNC",
  "PROVISIOND_PUBLIC_BASE_URL",
  "PROVISIOND_RECONCILE_TIMEOUT_MS",
  "PROVISIOND_SCIM_AUTH",
  "PROVISIOND_SCIM_BASIC_USER",
  "PROVISIOND_SCIM_BULK_MAX_OPERATIONS",
  "PROVISIOND_SCIM_HEADERS_TIMEOUT_MS",
  "PROVISIOND_SCIM_HEADER_NAME",
  "PROVISIOND_SCIM_HOST",
  "PROVISIOND_SCIM_MAX_BODY_BYTES",
  "PROVISIOND_SCIM_MAX_CONNECTIONS",
  "PROVISIOND_SCIM_MAX_FILTER_LENGTH",
  "PROVISIOND_SCIM_MAX_FILTER_TERMS",
  "PROVISIOND_SCIM_MAX_PAGE_BYTES",
  "PROVISIOND_SCIM_MAX_RESULTS",
  "PROVISIOND_SCIM_PORT",
  "PROVISIOND_SCIM_REQUEST_TIMEOUT_MS",
  "PROVISIOND_STORE_CONNECT_TIMEOUT_MS",
  "PROVISIOND_STORE_POOL_SIZE",
  "PROVISIOND_STORE_QUERY_TIMEOUT_MS",
  "PROVISIOND_TLS_CERT_FILE",
  "PROVISIOND_TLS_KEY_FILE",
];

/** Secrets, each also readable from the file its `_FILE` variant names. */
export const SECRETS = [
  "PROVISIOND_AGENT_SCIM_TOKEN",
  "PROVISIOND_ETCD_PASSWORD",
  "PROVISIOND_OKTA_API_TOKEN",
  "PROVISIOND_SCIM_AGENT_TOKEN",
  "PROVISIOND_SCIM_BASIC_PASSWORD",
  "PROVISIOND_SCIM_HEADER_VALUE",
  "PROVISIOND_SCIM_TOKEN",
  "PROVISIOND_STORE_URL",
];

/** Read by the build and test scripts (deploy/images.sh, the chaos suite), never by a node; harmless in its environment. */
export const TOOLING = [
  "PROVISIOND_CHAOS_REQUIRED",
  "PROVISIOND_IMAGE",
  "PROVISIOND_ETCD_IMAGE",
  "PROVISIOND_MARIADB_IMAGE",
  "PROVISIOND_IMAGES_REGISTRY",
  "PROVISIOND_IMAGE_CACHE",
  "PROVISIOND_LOCAL_DIR",
  "PROVISIOND_LOCAL_PORT_OFFSET",
  "PROVISIOND_TEST_CHROMIUM",
];

export const KNOWN: ReadonlySet<string> = new Set([
  ...SETTINGS,
  ...SECRETS,
  ...SECRETS.map((s) => `${s}_FILE`),
  ...TOOLING,
]);

/** The first PROVISIOND_* name in `names` that is not a setting, as an error naming the nearest one. */
export function refuseUnknown(names: Iterable<string>, where: string): void {
  for (const name of names) {
    if (!name.startsWith("PROVISIOND_") || KNOWN.has(name)) continue;
    const near = closest(name, [...KNOWN]);
    // Only a near miss, measured on the part after the prefix: past a third of it, a guess misleads.
    const rest = name.length - "PROVISIOND_".length;
    const hint = distance(name, near) <= Math.max(2, Math.floor(rest / 3)) ? ` Did you mean ${near}?` : "";
    throw new ConfigError(
      name,
      `is not a provisiond setting (${where}).${hint} See README, "Configuration".`,
    );
  }
}
