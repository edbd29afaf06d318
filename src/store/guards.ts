/**
 * The two checks that make agent writes safe across failovers, done in the same transaction as the write:
 *  - fencing: a request carrying a lower fencing token than the highest one seen is refused, so a deposed
 *    primary that wakes up cannot write;
 *  - idempotency: a request whose Idempotency-Key was already applied gets the recorded response and writes
 *    nothing, so replays after a failover are harmless.
 * Plain SCIM clients (Okta's agent, Entra) send neither header and are not affected.
 */
import { allIn, type Dialect, insertRows, type Queryable } from "./db.js";
import { UniqueViolation, ValueTooLarge } from "./errors.js";

/** provisiond_idempotency.request_sig is VARCHAR(512), idem_key VARCHAR(255) (src/store/migrations.ts). */
export const MAX_SIGNATURE = 512;
const MAX_KEY = 255;

/**
 * Every guard a write stores is checked here, for single requests and each operation of a /Bulk alike. (A key
 * that cannot be stored as given is refused as a value too large for its column: 400 invalidValue.)
 */
function checkWidths(key: string, signature: string): void {
  if (key.length > MAX_KEY)
    throw new ValueTooLarge("the Idempotency-Key (or bulkId)", `is longer than ${MAX_KEY} characters`);
  // MySQL's collations ignore trailing spaces: "k" and "k " would be one key there and two on SQLite.
  if (/^\s|\s$/.test(key))
    throw new ValueTooLarge("the Idempotency-Key (or bulkId)", "may not begin or end with white space");
  if (signature.length > MAX_SIGNATURE)
    throw new ValueTooLarge("an agent request's path", `is longer than ${MAX_SIGNATURE - 8} characters`);
}

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

  private async storedToken(lock: "shared" | "exclusive"): Promise<number> {
    const suffix = this.dialect !== "mysql" ? "" : lock === "shared" ? " LOCK IN SHARE MODE" : " FOR UPDATE";
    const rows = await this.q.all<{ token: number | string }>(
      `SELECT token FROM provisiond_fencing WHERE id = 1${suffix}`,
    );
    return Number(rows[0]?.token ?? 0);
  }

  private async store(token: number, now: string): Promise<void> {
    await this.q.run("UPDATE provisiond_fencing SET token = ?, updated_at = ? WHERE id = 1 AND token < ?", [
      token,
      now,
      token,
    ]);
  }

  /**
   * Admits a write carrying `token`, checked under a shared lock: concurrent writes of one term proceed in
   * parallel, while a raise (an exclusive lock) waits for them and then shuts out the older term. A token above
   * the stored one is stored in this transaction; the agent raises it before its first write (see raise), so
   * that is only a fallback.
   */
  async admit(token: number, now: string): Promise<void> {
    const current = await this.storedToken("shared");
    if (token < current) throw new FencingRejected(token, current);
    if (token > current) await this.store(token, now);
  }

  /** Raises the stored token to `token` under an exclusive lock; never lowers it. Returns the stored token. */
  async raise(token: number, now: string): Promise<number> {
    const current = await this.storedToken("exclusive");
    if (token < current) throw new FencingRejected(token, current);
    if (token > current) await this.store(token, now);
    return token;
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

  /**
   * The idempotency rule, in one place: a key seen before answers its recorded response (Replayed) when it
   * names the same request, and is refused (IdempotencyKeyReused) when it names another.
   */
  private static judge(
    key: string,
    signature: string,
    hit: { signature: string; response: StoredResponse },
  ): Replayed | IdempotencyKeyReused {
    return hit.signature === signature
      ? new Replayed(hit.response)
      : new IdempotencyKeyReused(key, hit.signature);
  }

  /**
   * For a batch: what each guard's key was used for before, by key (a Replayed or an IdempotencyKeyReused);
   * keys never seen are absent.
   */
  async priorUses(
    guards: { idempotencyKey: string; signature: string }[],
  ): Promise<Map<string, Replayed | IdempotencyKeyReused>> {
    for (const g of guards) checkWidths(g.idempotencyKey, g.signature);
    const out = new Map<string, Replayed | IdempotencyKeyReused>();
    const rows = await allIn<IdemRow & { idem_key: string }>(
      this.q,
      "SELECT idem_key, request_sig, status, response FROM provisiond_idempotency WHERE idem_key IN",
      guards.map((g) => g.idempotencyKey),
    );
    const hits = new Map(rows.map((r) => [r.idem_key, r]));
    for (const g of guards) {
      const r = hits.get(g.idempotencyKey);
      if (r)
        out.set(
          g.idempotencyKey,
          GuardRepo.judge(g.idempotencyKey, g.signature, {
            signature: r.request_sig,
            response: JSON.parse(r.response) as StoredResponse,
          }),
        );
    }
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
    for (const r of rows) checkWidths(r.key, r.signature);
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
    // Before the lookup: on MySQL a key with a trailing space would find another's record.
    checkWidths(guard.idempotencyKey, guard.signature);
    const hit = await this.find(guard.idempotencyKey);
    if (hit) throw GuardRepo.judge(guard.idempotencyKey, guard.signature, hit);
  }

  /**
   * Claims the key before the write: a concurrent request with the same key then waits on this row, and
   * fails with a duplicate key (a race it resolves by replaying) instead of colliding with the write itself.
   */
  async claim(guard: WriteGuard, now: string): Promise<void> {
    if (guard.idempotencyKey === undefined) return;
    checkWidths(guard.idempotencyKey, guard.signature);
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
