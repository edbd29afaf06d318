/** PROVISIOND_STORE_*: the app store's URL, pool, timeouts and circuit breaker. */
import { resolve } from "node:path";
import { ConfigError, type Reader } from "./reader.js";
import type { Config } from "./types.js";

/** How long a starting node keeps trying to reach its store by default: a pod whose database starts later. */
export const STORE_CONNECT_TIMEOUT_MS = 60_000;

/** Config["store"] and how long a starting node waits for the store (0: it fails at the first attempt). */

/**
 * The store settings. In a cluster every store transaction must end within TTL/2 (DESIGN.md, "one term, one
 * writer"): a deposed primary's last write can then never outlive the demotion that stopped it, and a new
 * primary's raise of the fence never waits on it for long. So the transaction deadline (the breaker timeout)
 * and the per-statement timeout default to 40% of the TTL there, and larger values are refused.
 */
export function storeConfig(r: Reader, dataDir: string, cluster: Config["cluster"]): Config["store"] {
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
    connectTimeoutMs: r.int("PROVISIOND_STORE_CONNECT_TIMEOUT_MS", STORE_CONNECT_TIMEOUT_MS, 0, 3_600_000),
    breaker: {
      timeoutMs,
      errorThresholdPercentage: r.int("PROVISIOND_BREAKER_ERROR_THRESHOLD_PERCENT", 50, 1, 100),
      volumeThreshold: r.int("PROVISIOND_BREAKER_VOLUME_THRESHOLD", 5, 1, 10_000),
      resetTimeoutMs: r.int("PROVISIOND_BREAKER_RESET_MS", 10_000, 100, 600_000),
      rollingWindowMs: r.int("PROVISIOND_BREAKER_WINDOW_MS", 10_000, 1000, 600_000),
    },
  };
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
