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
