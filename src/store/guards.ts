/**
 * The two checks that make agent writes safe across failovers, done in the same transaction as the write:
 *  - fencing: a request carrying a lower fencing token than the highest one seen is refused, so a deposed
 *    primary that wakes up cannot write;
 *  - idempotency: a request whose Idempotency-Key was already applied gets the recorded response and writes
 *    nothing, so replays after a failover are harmless.
 * Plain SCIM clients (Okta's agent, Entra) send neither header and are not affected.
 */
import { allIn, type Dialect, insertRows, type Queryable } from "./db.js";
import { UniqueViolation } from "./errors.js";

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

export interface WriteGuard {
  idempotencyKey?: string;
  /** Method and path: a key may only ever stand for one request. */
  signature: string;
  fencingToken?: number;
  /** The response a successful write answers; it is recorded with the key. */
  respond: (result: unknown) => StoredResponse;
}

export class FencingRejected extends Error {
  constructor(
    readonly token: number,
    readonly current: number,
  ) {
    super(`fencing token ${token} is stale; the current term is ${current}`);
    this.name = "FencingRejected";
  }
}

/** Not a failure: the request was applied before, and this is its recorded answer. */
export class Replayed extends Error {
  constructor(readonly response: StoredResponse) {
    super("replayed idempotent request");
    this.name = "Replayed";
  }
}

export class IdempotencyKeyReused extends Error {
  constructor(
    readonly key: string,
    readonly firstSignature: string,
  ) {
    super(`Idempotency-Key ${key} was first used for ${firstSignature}`);
    this.name = "IdempotencyKeyReused";
  }
}

/** Two requests with one key raced; the other one committed. The caller replays its response. */
export class IdempotencyRace extends Error {
  constructor(readonly key: string) {
    super(`a concurrent request with Idempotency-Key ${key} committed first`);
    this.name = "IdempotencyRace";
  }
}

interface IdemRow {
  request_sig: string;
  status: number;
  response: string;
}

export class GuardRepo {
  constructor(
    private readonly q: Queryable,
    private readonly dialect: Dialect,
  ) {}

  /**
   * Checks the fencing token under a shared lock: concurrent writes of one term proceed in parallel, while
   * raising the fence (an exclusive update, see raise) waits for them and then shuts out the older term.
   */
  async checkFence(token: number): Promise<void> {
    const lock = this.dialect === "mysql" ? " LOCK IN SHARE MODE" : "";
    const rows = await this.q.all<{ token: number | string }>(
      `SELECT token FROM provisiond_fencing WHERE id = 1${lock}`,
    );
    const current = Number(rows[0]?.token ?? 0);
    if (token < current) throw new FencingRejected(token, current);
  }

  /** Raises the stored token to `token` if it is higher; never lowers it. */
  async raise(token: number, now: string): Promise<void> {
    await this.q.run("UPDATE provisiond_fencing SET token = ?, updated_at = ? WHERE id = 1 AND token < ?", [
      token,
      now,
      token,
    ]);
  }

  async find(key: string): Promise<{ signature: string; response: StoredResponse } | undefined> {
    const rows = await this.q.all<IdemRow>(
      "SELECT request_sig, status, response FROM provisiond_idempotency WHERE idem_key = ?",
      [key],
    );
    const r = rows[0];
    if (!r) return undefined;
    return { signature: r.request_sig, response: JSON.parse(r.response) as StoredResponse };
  }

  /** The recorded requests among `keys`. */
  async findMany(keys: string[]): Promise<Map<string, { signature: string; response: StoredResponse }>> {
    const out = new Map<string, { signature: string; response: StoredResponse }>();
    const rows = await allIn<IdemRow & { idem_key: string }>(
      this.q,
      "SELECT idem_key, request_sig, status, response FROM provisiond_idempotency WHERE idem_key IN",
      keys,
    );
    for (const r of rows)
      out.set(r.idem_key, { signature: r.request_sig, response: JSON.parse(r.response) as StoredResponse });
    return out;
  }

  /**
   * Claims and records many keys at once, for a batch whose responses are known before it writes. Like claim,
   * a concurrent request with one of these keys waits on its row; a key taken meanwhile is a UniqueViolation.
   */
  async recordMany(
    rows: { key: string; signature: string; fencingToken: number | undefined; response: StoredResponse }[],
    now: string,
  ): Promise<void> {
    await insertRows(
      this.q,
      "INSERT INTO provisiond_idempotency (idem_key, request_sig, status, response, fencing_token, created_at)",
      rows.map((r) => [
        r.key,
        r.signature,
        r.response.status,
        JSON.stringify(r.response),
        r.fencingToken ?? null,
        now,
      ]),
    );
  }

  async checkReplay(guard: WriteGuard): Promise<void> {
    if (guard.idempotencyKey === undefined) return;
    const hit = await this.find(guard.idempotencyKey);
    if (!hit) return;
    if (hit.signature !== guard.signature)
      throw new IdempotencyKeyReused(guard.idempotencyKey, hit.signature);
    throw new Replayed(hit.response);
  }

  /**
   * Claims the key before the write: a concurrent request with the same key then waits on this row, and
   * fails with a duplicate key (a race it resolves by replaying) instead of colliding with the write itself.
   */
  async claim(guard: WriteGuard, now: string): Promise<void> {
    if (guard.idempotencyKey === undefined) return;
    try {
      await this.q.run(
        "INSERT INTO provisiond_idempotency (idem_key, request_sig, status, response, fencing_token, created_at) VALUES (?, ?, 0, '', ?, ?)",
        [guard.idempotencyKey, guard.signature, guard.fencingToken ?? null, now],
      );
    } catch (err) {
      if (err instanceof UniqueViolation) throw new IdempotencyRace(guard.idempotencyKey);
      throw err;
    }
  }

  async record(guard: WriteGuard, response: StoredResponse): Promise<void> {
    if (guard.idempotencyKey === undefined) return;
    await this.q.run("UPDATE provisiond_idempotency SET status = ?, response = ? WHERE idem_key = ?", [
      response.status,
      JSON.stringify(response),
      guard.idempotencyKey,
    ]);
  }

  /** Forgets keys older than `before`; returns how many. */
  async purge(before: string, limit: number): Promise<number> {
    const sql =
      this.dialect === "mysql"
        ? "DELETE FROM provisiond_idempotency WHERE created_at < ? LIMIT ?"
        : "DELETE FROM provisiond_idempotency WHERE idem_key IN (SELECT idem_key FROM provisiond_idempotency WHERE created_at < ? LIMIT ?)";
    return (await this.q.run(sql, [before, limit])).changes;
  }
}
