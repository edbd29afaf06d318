/** Errors the store raises. The SCIM layer maps them to HTTP; the store itself knows no HTTP. */

/** A unique index refused a write (userName taken, and the like). */
export class UniqueViolation extends Error {
  constructor(readonly index: string) {
    super(`unique constraint ${index} violated`);
    this.name = "UniqueViolation";
  }
}

/** A filter or sortBy the store cannot turn into SQL (an attribute it cannot search, a nested value filter). */
export class UnsupportedQuery extends Error {
  constructor(
    readonly part: "filter" | "sortBy",
    detail: string,
  ) {
    super(detail);
    this.name = "UnsupportedQuery";
  }
}

/** A value does not fit the column (or the index position) it is stored in: the request is refused, not cut. */
export class ValueTooLarge extends Error {
  constructor(
    readonly attribute: string,
    detail: string,
  ) {
    super(`${attribute} ${detail}`);
    this.name = "ValueTooLarge";
  }
}

/** The store cannot answer now: down, timed out, or the breaker is open. Retrying later may work. */
export class StoreUnavailable extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "StoreUnavailable";
  }
}

const MYSQL_TRANSIENT = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_LOCK_DEADLOCK",
  "ER_QUERY_TIMEOUT",
  "ER_OPTION_PREVENTS_STATEMENT",
  "POOL_CLOSED",
]);
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL)/;

/** Errors that say the store is unhealthy, as opposed to a request it refused; only these trip the breaker. */
export function isTransient(err: unknown): boolean {
  if (err instanceof StoreUnavailable) return true;
  // A transaction rolled back at its deadline says the store is too slow, which is what the breaker is for.
  if (err instanceof Error && err.name === "DeadlineExceeded") return true;
  const e = err as { code?: unknown; fatal?: unknown } | null;
  if (!e || typeof e !== "object") return false;
  if (e.fatal === true) return true;
  // MariaDB's max_statement_time kill (errno 1969), which mysql2 has no code name for.
  if ((e as { errno?: unknown }).errno === 1969) return true;
  if (typeof e.code !== "string") return false;
  return MYSQL_TRANSIENT.has(e.code) || SQLITE_TRANSIENT.test(e.code);
}

/**
 * Errors that say the store cannot be reached at all (down, refusing connections, an unknown host, a dropped
 * connection), as opposed to one that is slow, busy or refusing a request. Only these count as an outage.
 */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "POOL_CLOSED",
]);

export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== "object" || typeof e.code !== "string") return false;
  // opossum's own timeout says the call was slow, not that the store is gone.
  if (typeof e.message === "string" && e.message.startsWith("Timed out after")) return false;
  return UNREACHABLE.has(e.code);
}

/**
 * Where a store URL points, without its credentials: `host:port` for MySQL (3306 when the URL names no port),
 * the file for SQLite.
 */
export function storeEndpoint(url: string): string {
  if (url.startsWith("sqlite:")) return url;
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "3306"}`;
  } catch {
    return "(an unparsable URL)";
  }
}

/** One short cause for a log line: the error's code and the endpoint (`ECONNREFUSED 127.0.0.1:3306`). */
export function storeCause(err: unknown, endpoint: string): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = e && typeof e.code === "string" ? e.code : undefined;
  if (code) return `${code} ${endpoint}`;
  return `${e instanceof Error ? e.message : String(err)} (${endpoint})`;
}
