import mysql, { type Pool, type PoolConnection, type ResultSetHeader } from "mysql2/promise";
import { checkDeadline, type Db, type Queryable, type RunResult, type TxOptions } from "./db.js";
import { UniqueViolation } from "./errors.js";

export interface MysqlOptions {
  url: string;
  poolSize: number;
  /** Per-statement timeout in ms, so a hung query cannot hold a transaction open forever. */
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
    const idle = opts.idleTransactionTimeoutS;
    if (idle !== undefined) {
      // Queued on a new connection before anything else runs on it. MySQL answers "unknown variable": ignored.
      this.pool.on("connection", (conn) => {
        (conn as unknown as { query(sql: string, cb: (err: unknown) => void): void }).query(
          `SET SESSION idle_transaction_timeout = ${Math.trunc(idle)}`,
          () => undefined,
        );
      });
    }
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
