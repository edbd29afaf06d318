import mysql, { type Pool, type PoolConnection, type ResultSetHeader } from "mysql2/promise";
import { checkDeadline, type Db, type Queryable, type RunResult, type TxOptions } from "./db.js";
import { UniqueViolation } from "./errors.js";

export interface MysqlOptions {
  url: string;
  poolSize: number;
  /** Per-statement timeout in ms, on the client and (see the session limits) on the server. */
  queryTimeoutMs: number;
  connectTimeoutMs: number;
  /**
   * MariaDB ends a session whose transaction sits idle this long. A node frozen mid-transaction (SIGSTOP, a VM
   * pause, a partition) cannot end it itself, and its locks, the fence's shared lock among them, would hold
   * every later term back until it woke. MySQL has no such setting (see README's limits).
   */
  idleTransactionTimeoutS?: number;
}

function wrap(conn: PoolConnection, timeout: number): Queryable {
  return {
    async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      const [rows] = await conn.query({ sql, timeout }, params as unknown[]);
      return rows as T[];
    },
    async run(sql: string, params: readonly unknown[] = []): Promise<RunResult> {
      try {
        const [res] = await conn.query<ResultSetHeader>({ sql, timeout }, params as unknown[]);
        return { changes: res.affectedRows, lastId: Number(res.insertId) };
      } catch (err) {
        const e = err as { code?: string; sqlMessage?: string };
        if (e.code === "ER_DUP_ENTRY") throw new UniqueViolation(e.sqlMessage ?? "unique");
        throw err;
      }
    },
  };
}

export class MysqlDb implements Db {
  readonly dialect = "mysql" as const;
  private readonly pool: Pool;
  private readonly sessionLimits: string[];

  constructor(private readonly opts: MysqlOptions) {
    this.pool = mysql.createPool({
      uri: opts.url,
      connectionLimit: opts.poolSize,
      connectTimeout: opts.connectTimeoutMs,
      charset: "utf8mb4_bin",
      timezone: "Z",
      supportBigNumbers: true,
      bigNumberStrings: false,
      enableKeepAlive: true,
      // Statements are prepared client-side with escaping done by mysql2 from bound values (`?`).
      namedPlaceholders: false,
    });
    // Session limits, queued on each new connection before anything else runs on it. The server enforces them:
    // mysql2's `timeout` only gives up waiting, while the statement goes on using the server (and its locks).
    // MariaDB knows max_statement_time (seconds) and idle_transaction_timeout; MySQL knows max_execution_time
    // (ms, SELECTs only). Each server answers "unknown variable" to the others' names: ignored.
    this.sessionLimits = [
      `SET SESSION max_statement_time = ${(opts.queryTimeoutMs / 1000).toFixed(3)}`,
      `SET SESSION max_execution_time = ${Math.trunc(opts.queryTimeoutMs)}`,
      ...(opts.idleTransactionTimeoutS !== undefined
        ? [`SET SESSION idle_transaction_timeout = ${Math.trunc(opts.idleTransactionTimeoutS)}`]
        : []),
    ];
    const session = this.sessionLimits;
    this.pool.on("connection", (conn) => {
      for (const sql of session)
        (conn as unknown as { query(sql: string, cb: (err: unknown) => void): void }).query(
          sql,
          () => undefined,
        );
    });
  }

  /** Runs the session statements on `conn`, each allowed to fail (see the constructor). */
  private async setSession(conn: PoolConnection, statements: string[]): Promise<void> {
    for (const sql of statements) await conn.query(sql).catch(() => undefined);
  }

  async transaction<T>(fn: (q: Queryable) => Promise<T>, opts?: TxOptions): Promise<T> {
    const conn = await this.pool.getConnection();
    let broken = false;
    try {
      await conn.query(opts?.readOnly ? "START TRANSACTION READ ONLY" : "START TRANSACTION");
      try {
        const out = await fn(wrap(conn, this.opts.queryTimeoutMs));
        checkDeadline(opts);
        await conn.query("COMMIT");
        return out;
      } catch (err) {
        try {
          await conn.query("ROLLBACK");
        } catch {
          broken = true;
        }
        throw err;
      }
    } finally {
      if (broken) conn.destroy();
      else conn.release();
    }
  }

  async withMigrationLock<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    // A named lock, so two nodes starting at once run each migration exactly once.
    const conn = await this.pool.getConnection();
    // Waiting for the lock, and a migration itself (an index on a big table), may take longer than any request.
    await this.setSession(conn, ["SET SESSION max_statement_time = 0", "SET SESSION max_execution_time = 0"]);
    try {
      const [rows] = await conn.query("SELECT GET_LOCK('provisiond_migrations', 120) AS got");
      if ((rows as { got: number }[])[0]?.got !== 1)
        throw new Error("timed out waiting for the migration lock");
      try {
        return await fn(wrap(conn, 0));
      } finally {
        await conn.query("SELECT RELEASE_LOCK('provisiond_migrations')");
      }
    } finally {
      await this.setSession(conn, this.sessionLimits);
      conn.release();
    }
  }

  async ping(): Promise<void> {
    const conn = await this.pool.getConnection();
    try {
      await conn.ping();
    } finally {
      conn.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
